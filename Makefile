# Gatehouse build and test entry points. `make test` is the one test command:
# it installs missing Debian build packages for Fyne (as root), then runs
# every test with the race detector.

GO      ?= go
BIN     := bin/gatehouse
export LANG ?= en_US.UTF-8
export PATH := $(PATH):/usr/local/go/bin

# Debian packages Fyne's desktop driver needs to build (cgo, OpenGL, X11).
FYNE_DEPS := gcc pkg-config libgl1-mesa-dev libx11-dev libxrandr-dev libxcursor-dev \
             libxinerama-dev libxi-dev libxxf86vm-dev

.PHONY: all deps build run test vet fmt-check bench clean

all: build

# deps installs whatever of FYNE_DEPS is missing; without root it says what to run.
deps:
	@missing=""; for p in $(FYNE_DEPS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "missing Debian packages:$$missing"; echo "run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi
	$(GO) mod download

build: deps
	$(GO) build -o $(BIN) ./cmd/gatehouse

run: build
	./$(BIN)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 30m ./...

# bench compares Gatehouse with nginx and Caddy (about 12 minutes; QUICK=1 for a
# smoke run); see bench/run.sh for its settings and docs/BENCHMARKS.md.
bench: deps
	bench/run.sh

clean:
	rm -rf bin dist
