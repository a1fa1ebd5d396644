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
# certutil, which `gatehouse trust` uses for browsers' NSS databases and its
# tests run for real.
TRUST_DEPS := libnss3-tools
# systemd-analyze, with which the tests of `gatehouse service` verify the
# unit files and rate their sandbox (systemd need not be running), and
# procps's /bin/kill, the units' ExecReload, which verify --user looks for.
SERVICE_DEPS := systemd procps

.PHONY: all deps build run test test-ui-headless screenshots vet fmt-check fuzz bench clean

all: build

# deps installs whatever of FYNE_DEPS, TRUST_DEPS and SERVICE_DEPS is missing; without
# root it says what to run.
deps:
	@missing=""; for p in $(FYNE_DEPS) $(TRUST_DEPS) $(SERVICE_DEPS); do \
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

# fuzz runs each fuzz target for FUZZTIME, one after another (a fuzz run
# takes one target), in every package that has some: run it before a
# change lands, longer for code that reads what visitors send. Failing
# inputs land in <package>/testdata/fuzz/<FuzzName>/; commit them with the
# fix. `make test` does not fuzz (a new find would fail it at random): its
# `go test` replays every committed input and seed of every target.
# FUZZMINIMIZETIME bounds the shrinking of each new interesting input, during
# which a target that runs real connections (FuzzWebSocketRelay) makes no
# progress; Go's default is a minute.
FUZZTIME ?= 30s
FUZZMINIMIZETIME ?= 5s
fuzz:
	@pkgs=$$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sed 's,^\./,,' | sort -u); \
	[ -n "$$pkgs" ] || { echo "no fuzz targets found"; exit 1; }; \
	for pkg in $$pkgs; do \
	  list=$$($(GO) test -list '^Fuzz' ./$$pkg) || { echo "$$list"; exit 1; }; \
	  for f in $$(echo "$$list" | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=$(FUZZMINIMIZETIME) ./$$pkg >/dev/null || \
	      { $(GO) test -run "^$$f\$$" ./$$pkg; exit 1; }; \
	  done; \
	done

test: deps fmt-check vet test-ui-headless
	$(GO) test -race -count=1 -timeout 30m ./...

# The UI's tests need no display and no cgo: prove it.
test-ui-headless:
	CGO_ENABLED=0 $(GO) test -count=1 ./ui/...

# Renders each screen with the test driver into docs/*.png.
screenshots:
	CGO_ENABLED=0 $(GO) test -count=1 ./ui/... -args -screenshots=$(CURDIR)/docs

# bench compares Gatehouse with nginx and Caddy (about 20 minutes; QUICK=1 for a
# smoke run); see bench/run.sh for its settings and docs/BENCHMARKS.md.
bench: deps
	bench/run.sh

clean:
	rm -rf bin dist
