#!/usr/bin/env bash
# bench/run.sh: Gatehouse against nginx and Caddy, on loopback, in front of the
# same upstream (bench/upstream, a stand-in for authentik) with the same
# certificate. `make bench` runs it; docs/BENCHMARKS.md explains the results.
#
# It measures, in interleaved rounds (the peers take turns within each round,
# in a rotating order, so a noisy neighbour hurts them all alike):
#   - HTTP requests/s and latency p50/p99 with wrk through TLS: 100 B and
#     100 KiB answers, 32 and 256 connections;
#   - WebSocket echo round trips/s and p50/p99 (bench/wsload): 64 B and
#     16 KiB messages, 32 and 256 connections;
#   - HTTP/2 requests/s and latency p50/p99 with h2load: 100 B and 100 KiB
#     answers, 8 and 64 connections with 16 streams each;
#   - resident memory per idle proxied WebSocket: a fresh proxy process,
#     VmRSS before and after opening IDLE_CONNS WebSockets through it (nginx:
#     master plus workers);
#   - time from process start to the first proxied answer (bench/startup);
# and profiles Gatehouse (bench/profile): CPU under wrk load, and the heap
# with IDLE_CONNS idle WebSockets open.
#
# Settings (environment):
#   ROUNDS=3            rounds of every measurement
#   HTTP_DURATION=8     seconds per wrk run
#   WS_DURATION=8       seconds per WebSocket echo run
#   WS_CASES="64:32 64:256 16384:32 16384:256"   echo message bytes:connections
#   H2_CASES="100:8:6400 100:64:51200 102400:8:3200 102400:64:12800"
#                       HTTP/2 answer bytes:connections:requests. A request count,
#                       not a duration: nginx closes an HTTP/2 connection after
#                       http2_max_requests (1,000), so keep under 1,000 per connection
#   H2_STREAMS=16       concurrent streams per HTTP/2 connection (h2load -m)
#   H2_THREADS=$(nproc) h2load threads (-t), as WRK_THREADS for wrk
#   IDLE_CONNS=2000     idle WebSockets for the memory measurement
#   PROFILE_SECONDS=10  CPU profile length (0: no profile)
#   PEERS="nginx caddy gatehouse"
#                       gatehouse-kaN is Gatehouse with --upstream-keepalive N,
#                       gatehouse-gogcN Gatehouse with GOGC=N, gatehouse-base
#                       the build at BASE_BIN (an earlier commit's, for A/B runs)
#   BASE_BIN=bin/gatehouse-base
#   PHASES="http ws h2 idle startup profile"   which measurements to run
#   HTTP_CASES="100:32 100:256 102400:32 102400:256"   response bytes:connections
#   QUICK=1             one short round of everything, to check the script
#   OUT=bench/results/<time>   where results, logs and profiles go
# Results: $OUT/summary.md (the table), $OUT/raw.tsv (every sample),
# $OUT/machine.txt, profiles (cpu-*, heap-idle-*) and $OUT/logs.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if [[ "${QUICK:-0}" == 1 ]]; then
	: "${ROUNDS:=1}" "${HTTP_DURATION:=1}" "${WS_DURATION:=1}" "${IDLE_CONNS:=200}" "${PROFILE_SECONDS:=2}"
	: "${H2_CASES:=100:8:800 100:64:1024 102400:8:400 102400:64:1024}"
fi
ROUNDS=${ROUNDS:-3}
HTTP_DURATION=${HTTP_DURATION:-8}
WS_DURATION=${WS_DURATION:-8}
read -r -a WS_CASES <<<"${WS_CASES:-64:32 64:256 16384:32 16384:256}"                       # bytes:connections
read -r -a H2_CASES <<<"${H2_CASES:-100:8:6400 100:64:51200 102400:8:3200 102400:64:12800}" # bytes:connections:requests
H2_STREAMS=${H2_STREAMS:-16}
H2_THREADS=${H2_THREADS:-$(nproc)}
IDLE_CONNS=${IDLE_CONNS:-2000}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
PHASES=" ${PHASES:-http ws h2 idle startup profile} "
read -r -a PEERS <<<"${PEERS:-nginx caddy gatehouse}"
OUT=${OUT:-bench/results/$(date -u +%Y%m%d-%H%M%S)}
WRK_THREADS=${WRK_THREADS:-$(nproc)}
BASE_BIN=${BASE_BIN:-bin/gatehouse-base}

UPSTREAM_PORT=19443
CADDY_HTTP_PORT=18440 # Caddy insists on a plain HTTP port even with redirects off
PEER_PORT_BASE=18441  # peer i listens on PEER_PORT_BASE+i
PROFILE_PORT=18459
PPROF_ADDR=127.0.0.1:16060
READY_TEXT="authentik stand-in" # in the upstream's page, so a ready answer is a proxied one

read -r -a HTTP_CASES <<<"${HTTP_CASES:-100:32 100:256 102400:32 102400:256}" # bytes:connections

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# --- setup ---------------------------------------------------------------------

install_missing() {
	local missing=() p
	for p in nginx-light caddy wrk nghttp2-client curl; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		return
	fi
	[[ $(id -u) == 0 ]] || die "missing Debian packages: ${missing[*]}; run: sudo apt-get install ${missing[*]}"
	log "installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# The packages start system services on ports 80/443; the suite needs none.
	systemctl disable --now nginx caddy >/dev/null 2>&1 || true
}

build() {
	log "building gatehouse and the bench tools"
	go build -o bin/gatehouse ./cmd/gatehouse
	local t
	for t in upstream wsload startup profile; do
		go build -o "bin/bench-$t" "./bench/$t"
	done
}

# raise_fd_limit makes room for IDLE_CONNS WebSockets: the proxy holds two
# descriptors per connection, the client and the upstream one each.
raise_fd_limit() {
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	local need=$((2 * IDLE_CONNS + 1000))
	(($(ulimit -n) >= need)) || die "open-file limit $(ulimit -n) is below the $need the idle WebSocket test needs (ulimit -Hn is $(ulimit -Hn))"
}

# render TEMPLATE PORT: the template with the @...@ names filled in, in $WORK.
render() {
	sed -e "s#@WORK@#$WORK#g" -e "s#@PORT@#$2#g" -e "s#@UPSTREAM_PORT@#$UPSTREAM_PORT#g" \
		-e "s#@HTTP_PORT@#$CADDY_HTTP_PORT#g" "bench/$1" >"$WORK/$1"
}

# --- processes -----------------------------------------------------------------

declare -A PORT PID
declare -A RUNNING # PIDs this script started and has not yet stopped

# started PID and stop PID keep RUNNING, so the exit trap signals only our
# own live processes, never a reused PID.
started() { RUNNING[$1]=1; }
stop() {
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	unset "RUNNING[$1]"
}

# cleanup stops what is still running, keeps the logs in $OUT/logs and
# removes the scratch directory with its throwaway key.
cleanup() {
	local p
	for p in "${!RUNNING[@]}"; do
		stop "$p"
	done
	if [[ -n ${WORK:-} && -d $WORK ]]; then
		mkdir -p "$OUT/logs"
		cp "$WORK"/*.log "$WORK"/*.out "$WORK"/nginx.conf "$WORK"/Caddyfile "$OUT/logs/" 2>/dev/null || true
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

# peer_cmd NAME: sets CMD to the command line that runs peer NAME on its port.
peer_cmd() {
	local port=${PORT[$1]}
	case $1 in
	nginx)
		render nginx.conf "$port"
		mkdir -p "$WORK/nginx-temp"
		CMD=(nginx -p "$WORK" -e "$WORK/nginx-error.log" -c "$WORK/nginx.conf")
		;;
	caddy)
		render Caddyfile "$port"
		CMD=(env HOME="$WORK" XDG_CONFIG_HOME="$WORK/xdg" XDG_DATA_HOME="$WORK/xdg"
			caddy run --config "$WORK/Caddyfile" --adapter caddyfile)
		;;
	gatehouse | gatehouse-ka* | gatehouse-gogc* | gatehouse-base)
		# XDG_CONFIG_HOME keeps a user's ~/.config/gatehouse config out of the run.
		CMD=(env XDG_CONFIG_HOME="$WORK/xdg")
		if [[ $1 == gatehouse-gogc* ]]; then
			CMD+=(GOGC="${1#gatehouse-gogc}")
		fi
		local bin=bin/gatehouse
		if [[ $1 == gatehouse-base ]]; then
			bin=$BASE_BIN
			[[ -x $bin ]] || die "gatehouse-base needs a build to compare with at $bin (BASE_BIN)"
		fi
		CMD+=("$bin" serve
			--tls files --cert-file "$WORK/cert.pem" --key-file "$WORK/key.pem"
			--upstream "https://127.0.0.1:$UPSTREAM_PORT" --upstream-insecure
			--hostname localhost --https-addr "127.0.0.1:$port"
			--http-addr off --status-addr off --control-socket off)
		if [[ $1 == gatehouse-ka* ]]; then
			CMD+=(--upstream-keepalive "${1#gatehouse-ka}")
		fi
		;;
	*) die "unknown peer $1 (nginx, caddy, gatehouse, gatehouse-kaN, gatehouse-gogcN or gatehouse-base)" ;;
	esac
}

# wait_ready URL: polls until URL answers with the upstream's page.
wait_ready() {
	local i
	for ((i = 0; i < 300; i++)); do
		curl -sfk --max-time 1 "$1" 2>/dev/null | grep -q "$READY_TEXT" && return 0
		sleep 0.1
	done
	die "$1 did not answer with the upstream's page within 30 s"
}

start_peer() {
	peer_cmd "$1"
	"${CMD[@]}" >>"$WORK/$1.log" 2>&1 &
	PID[$1]=$!
	started $!
	wait_ready "https://localhost:${PORT[$1]}/"
}

stop_peer() { stop "${PID[$1]}"; }

start_upstream() {
	bin/bench-upstream -addr "127.0.0.1:$UPSTREAM_PORT" -cert-dir "$WORK" >"$WORK/upstream.log" 2>&1 &
	UPSTREAM_PID=$!
	started $!
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $WORK/key.pem ]] && curl -sfk --max-time 1 "https://127.0.0.1:$UPSTREAM_PORT/-/health/live/" -o /dev/null && return 0
		sleep 0.1
	done
	die "the upstream did not start; see $WORK/upstream.log"
}

# check_upstream fails the run, with the reason, if the upstream has exited.
check_upstream() {
	if ! kill -0 "$UPSTREAM_PID" 2>/dev/null || [[ $(ps -o stat= -p "$UPSTREAM_PID") == Z* ]]; then
		local status=0
		wait "$UPSTREAM_PID" || status=$?
		unset "RUNNING[$UPSTREAM_PID]"
		die "the upstream exited with status $status (128+N: signal N); see $OUT/logs/upstream.log"
	fi
}

# rss_kib PID: resident memory of PID and its children (nginx's workers), KiB.
rss_kib() {
	local total=0 p kib
	for p in "$1" $(ps -o pid= --ppid "$1"); do
		kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
		total=$((total + ${kib:-0}))
	done
	echo "$total"
}

# rotated ROUND: the peers in the order they take turns in that round.
rotated() {
	local n=${#PEERS[@]} i
	for ((i = 0; i < n; i++)); do
		echo "${PEERS[$(((i + $1) % n))]}"
	done
}

# record METRIC PEER VALUE: one sample in raw.tsv.
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$OUT/raw.tsv"; }

# --- measurements --------------------------------------------------------------

# wrk_run PEER BYTES CONNS SECONDS: prints "rps p50_ms p99_ms errors requests".
wrk_run() {
	wrk -t "$WRK_THREADS" -c "$3" -d "${4}s" --latency "https://localhost:${PORT[$1]}/bytes/$2" | awk '
		function ms(v) {
			if (v ~ /us$/) return v / 1000
			if (v ~ /ms$/) return v + 0
			if (v ~ /s$/) return v * 1000
			return v
		}
		/^ +50%/ { p50 = ms($2) }
		/^ +99%/ { p99 = ms($2) }
		/^Requests\/sec:/ { rps = $2 }
		/ requests in / { requests = $1 }
		/Non-2xx/ { errors += $NF }
		/Socket errors/ { gsub(/,/, ""); errors += $4 + $6 + $8 + $10 }
		END { printf "%s %s %s %d %d\n", rps, p50, p99, errors, requests }'
}

# upstream_connections: how many connections the upstream has accepted.
upstream_connections() { curl -sfk --max-time 5 "https://127.0.0.1:$UPSTREAM_PORT/-/bench/connections"; }

measure_http() {
	local peer r c bytes conns rps p50 p99 errors requests dialled
	log "HTTP: warming up"
	for peer in "${PEERS[@]}"; do
		wrk_run "$peer" 100 32 2 >/dev/null
	done
	for ((r = 0; r < ROUNDS; r++)); do
		for c in "${HTTP_CASES[@]}"; do
			bytes=${c%:*} conns=${c#*:}
			for peer in $(rotated "$r"); do
				dialled=$(upstream_connections)
				read -r rps p50 p99 errors requests < <(wrk_run "$peer" "$bytes" "$conns" "$HTTP_DURATION")
				check_upstream
				[[ -n $rps && $requests -gt 0 ]] || die "wrk gave no result for $peer"
				dialled=$(($(upstream_connections) - dialled))
				log "HTTP round $((r + 1)) ${bytes}B ${conns}c $peer: $rps req/s, p50 $p50 ms, p99 $p99 ms, $errors errors, $dialled upstream connections for $requests requests"
				record "http_${bytes}_${conns}_rps" "$peer" "$rps"
				record "http_${bytes}_${conns}_p50" "$peer" "$p50"
				record "http_${bytes}_${conns}_p99" "$peer" "$p99"
				record "http_${bytes}_${conns}_errors" "$peer" "$errors"
				record "http_${bytes}_${conns}_dials" "$peer" "$(awk -v d="$dialled" -v n="$requests" 'BEGIN { printf "%.1f", 1000 * d / n }')"
			done
		done
	done
}

# cpu_ticks PID: user and system clock ticks used by PID and its children
# (nginx's workers) so far.
cpu_ticks() {
	local total=0 p t
	for p in "$1" $(ps -o pid= --ppid "$1"); do
		# Fields 14 and 15, counted after the ")" that ends the command name.
		t=$(sed -E 's/.*\) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}')
		total=$((total + ${t:-0}))
	done
	echo "$total"
}

# us_per_round_trip TICKS ROUND_TRIPS: CPU microseconds per round trip.
us_per_round_trip() {
	awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n }'
}

measure_ws_echo() {
	local peer r c size conns line proxy0 up0 rts
	for ((r = 0; r < ROUNDS; r++)); do
		for c in "${WS_CASES[@]}"; do
			size=${c%:*} conns=${c#*:}
			for peer in $(rotated "$r"); do
				proxy0=$(cpu_ticks "${PID[$peer]}") up0=$(cpu_ticks "$UPSTREAM_PID")
				line=$(bin/bench-wsload -mode echo -url "wss://localhost:${PORT[$peer]}/ws/client/" \
					-size "$size" -conns "$conns" -duration "${WS_DURATION}s")
				rts=$(sed -E 's/.*round_trips=([^ ]+).*/\1/' <<<"$line")
				# CPU per round trip: the proxy's (its connection set-up
				# included, a few hundred handshakes against 100,000s of
				# round trips), and the client's and upstream's together.
				record "ws_${size}_${conns}_cpu" "$peer" "$(us_per_round_trip $(($(cpu_ticks "${PID[$peer]}") - proxy0)) "$rts")"
				record "ws_${size}_${conns}_cpu_others" "$peer" "$(awk -v w="$(sed -E 's/.*cpu_us_per_rt=([^ ]+).*/\1/' <<<"$line")" \
					-v u="$(us_per_round_trip $(($(cpu_ticks "$UPSTREAM_PID") - up0)) "$rts")" 'BEGIN { printf "%.1f", w + u }')"
				log "WebSocket echo round $((r + 1)) ${size}B ${conns}c $peer: $line"
				record "ws_${size}_${conns}_rtps" "$peer" "$(sed -E 's/.*round_trips_per_s=([^ ]+).*/\1/' <<<"$line")"
				record "ws_${size}_${conns}_p50" "$peer" "$(sed -E 's/.*p50_ms=([^ ]+).*/\1/' <<<"$line")"
				record "ws_${size}_${conns}_p99" "$peer" "$(sed -E 's/.*p99_ms=([^ ]+).*/\1/' <<<"$line")"
			done
		done
	done
}

# h2load_run PEER BYTES CONNS REQUESTS: prints "rps p50_ms p99_ms errors
# requests". h2load reports only the mean and spread of its request times,
# so the percentiles come from its per-request log (third column: the
# microseconds from sending a request to the end of its response).
h2load_run() {
	local log="$WORK/h2load.log" out
	rm -f "$log"
	out=$(h2load -t "$H2_THREADS" -c "$3" -m "$H2_STREAMS" -n "$4" --log-file="$log" \
		"https://localhost:${PORT[$1]}/bytes/$2")
	local rps errors done
	rps=$(awk '/^finished in/ { gsub(/,/, ""); print $4 }' <<<"$out")
	# "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
	read -r done errors < <(awk '/^requests:/ { print $8, $10 + $12 + $14 }' <<<"$out")
	# "status codes: N 2xx, N 3xx, N 4xx, N 5xx"
	errors=$((errors + $(awk '/^status codes:/ { print $5 + $7 + $9 }' <<<"$out")))
	awk -F'\t' '$2 >= 200 && $2 < 300 { print $3 }' "$log" | sort -n | awk -v rps="$rps" -v errors="$errors" -v done="$done" '
		{ v[NR] = $1 }
		function pct(p) { r = int((NR * p + 99) / 100); return v[r < 1 ? 1 : r] / 1000 }
		END { if (NR) printf "%s %.3f %.3f %d %d\n", rps, pct(50), pct(99), errors, done }'
}

measure_h2() {
	local peer r c bytes conns requests rps p50 p99 errors done dialled
	log "HTTP/2: warming up"
	for peer in "${PEERS[@]}"; do
		h2load_run "$peer" 100 8 800 >/dev/null
	done
	for ((r = 0; r < ROUNDS; r++)); do
		for c in "${H2_CASES[@]}"; do
			IFS=: read -r bytes conns requests <<<"$c"
			for peer in $(rotated "$r"); do
				dialled=$(upstream_connections)
				read -r rps p50 p99 errors done < <(h2load_run "$peer" "$bytes" "$conns" "$requests")
				check_upstream
				[[ -n ${rps:-} && ${done:-0} -gt 0 ]] || die "h2load gave no result for $peer"
				dialled=$(($(upstream_connections) - dialled))
				log "HTTP/2 round $((r + 1)) ${bytes}B ${conns}c x$H2_STREAMS $peer: $rps req/s, p50 $p50 ms, p99 $p99 ms, $errors errors, $done of $requests requests done, $dialled upstream connections"
				record "h2_${bytes}_${conns}_rps" "$peer" "$rps"
				record "h2_${bytes}_${conns}_p50" "$peer" "$p50"
				record "h2_${bytes}_${conns}_p99" "$peer" "$p99"
				record "h2_${bytes}_${conns}_errors" "$peer" "$errors"
				record "h2_${bytes}_${conns}_dials" "$peer" "$(awk -v d="$dialled" -v n="$done" 'BEGIN { printf "%.1f", 1000 * d / n }')"
			done
		done
	done
}

# wait_open PID OUTFILE PEER: waits for wsload's "open=" line, failing if it
# exits first or takes over 120 s.
wait_open() {
	local i
	for ((i = 0; i < 1200; i++)); do
		if grep -q '^open=' "$2"; then
			return 0
		fi
		if ! kill -0 "$1" 2>/dev/null || [[ $(ps -o stat= -p "$1") == Z* ]]; then
			check_upstream
			die "wsload failed against $3: $(head -c 600 "$2")"
		fi
		sleep 0.1
	done
	die "$IDLE_CONNS WebSockets through $3 did not open within 120 s"
}

# measure_idle_ws PEER: a fresh process's memory per idle proxied WebSocket.
measure_idle_ws() {
	local peer=$1 before after client out="$WORK/idle-$1.out"
	start_peer "$peer"
	sleep 1
	before=$(rss_kib "${PID[$peer]}")
	bin/bench-wsload -mode idle -url "wss://localhost:${PORT[$peer]}/ws/client/" -conns "$IDLE_CONNS" >"$out" 2>&1 &
	client=$!
	started "$client"
	wait_open "$client" "$out" "$peer"
	sleep 2 # let the proxy settle: buffers allocated at the handshake are done
	after=$(rss_kib "${PID[$peer]}")
	kill -0 "$client" 2>/dev/null || die "a WebSocket through $peer closed while idle: $(head -c 600 "$out")"
	check_upstream
	stop "$client"
	stop_peer "$peer"
	log "idle WebSockets $peer: RSS $before KiB before, $after KiB with $IDLE_CONNS open"
	record idle_rss_before "$peer" "$before"
	record idle_rss_after "$peer" "$after"
	record idle_kib_per_ws "$peer" "$(awk -v a="$after" -v b="$before" -v n="$IDLE_CONNS" 'BEGIN { printf "%.1f", (a - b) / n }')"
}

measure_startup() {
	local peer r line
	for ((r = 0; r < ROUNDS; r++)); do
		for peer in $(rotated "$r"); do
			peer_cmd "$peer"
			line=$(bin/bench-startup -url "https://localhost:${PORT[$peer]}/" -want "$READY_TEXT" -- "${CMD[@]}" 2>>"$WORK/$peer.log")
			log "start-up round $((r + 1)) $peer: $line"
			record first_response_ms "$peer" "${line#first_response_ms=}"
		done
	done
}

# start_profiled PEER: the engine in-process with PEER's keepalive setting
# and pprof beside it, on PROFILE_PORT; sets PROFILED to its PID.
start_profiled() {
	local peer=$1 keepalive=0
	if [[ $peer == gatehouse-ka* ]]; then
		keepalive=${peer#gatehouse-ka}
	fi
	cat >"$WORK/profile-$peer.json" <<-EOF
		{
		  "hostname": "localhost",
		  "upstream": "https://127.0.0.1:$UPSTREAM_PORT",
		  "upstream_insecure": true,
		  "tls": "files",
		  "cert_file": "$WORK/cert.pem",
		  "key_file": "$WORK/key.pem",
		  "state_dir": "$WORK/profile-state",
		  "https_addr": "127.0.0.1:$PROFILE_PORT",
		  "http_addr": "off",
		  "status_addr": "off",
		  "upstream_keepalive": $keepalive
		}
	EOF
	bin/bench-profile -config "$WORK/profile-$peer.json" -pprof "$PPROF_ADDR" >>"$WORK/profile.log" 2>&1 &
	PROFILED=$!
	started "$PROFILED"
	wait_ready "https://localhost:$PROFILE_PORT/"
}

# profile_cpu PEER: a CPU profile of PEER's engine under wrk at 100 B and 32
# connections.
profile_cpu() {
	local peer=$1 prof="$OUT/cpu-$1.prof" load
	start_profiled "$peer"
	wrk -t "$WRK_THREADS" -c 32 -d "$((PROFILE_SECONDS + 2))s" "https://localhost:$PROFILE_PORT/bytes/100" >"$OUT/profile-wrk-$peer.txt" &
	load=$!
	started "$load"
	sleep 1
	curl -sf -o "$prof" "http://$PPROF_ADDR/debug/pprof/profile?seconds=$PROFILE_SECONDS"
	wait "$load"
	unset "RUNNING[$load]"
	stop "$PROFILED"
	go tool pprof -top -nodecount=30 "$prof" >"$OUT/cpu-$peer-top.txt" 2>/dev/null
	go tool pprof -top -cum -nodecount=60 "$prof" >"$OUT/cpu-$peer-cum.txt" 2>/dev/null
	log "CPU profile $peer: $OUT/cpu-$peer-top.txt, $OUT/cpu-$peer-cum.txt ($(awk '/^Requests\/sec/ {print $2}' "$OUT/profile-wrk-$peer.txt") req/s while profiled)"
}

# profile_idle_heap PEER: PEER's heap and memory statistics with IDLE_CONNS
# idle WebSockets open, to show what each one holds.
profile_idle_heap() {
	local peer=$1 client out="$WORK/idle-profile.out"
	start_profiled "$peer"
	bin/bench-wsload -mode idle -url "wss://localhost:$PROFILE_PORT/ws/client/" -conns "$IDLE_CONNS" >"$out" 2>&1 &
	client=$!
	started "$client"
	wait_open "$client" "$out" "the profiled engine"
	sleep 2
	curl -sf -o "$OUT/heap-idle-$peer.prof" "http://$PPROF_ADDR/debug/pprof/heap?gc=1"
	curl -sf -o "$OUT/heap-idle-$peer.txt" "http://$PPROF_ADDR/debug/pprof/heap?debug=1"
	curl -sf -o "$OUT/goroutines-idle-$peer.txt" "http://$PPROF_ADDR/debug/pprof/goroutine?debug=1"
	kill -0 "$client" 2>/dev/null || die "a WebSocket through the profiled engine closed while idle: $(head -c 600 "$out")"
	stop "$client"
	stop "$PROFILED"
	go tool pprof -top -sample_index=inuse_space -nodecount=30 "$OUT/heap-idle-$peer.prof" >"$OUT/heap-idle-$peer-top.txt" 2>/dev/null
	log "heap profile with $IDLE_CONNS idle WebSockets, $peer: $OUT/heap-idle-$peer-top.txt ($(head -1 "$OUT/goroutines-idle-$peer.txt"))"
}

# --- summary -------------------------------------------------------------------

# median METRIC PEER: the median of the samples, empty if there are none.
median() {
	awk -F'\t' -v m="$1" -v p="$2" '$1 == m && $2 == p { print $3 }' "$OUT/raw.tsv" | sort -g | awk '
		{ v[NR] = $1 }
		END { if (NR) printf "%.6g", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

summarize() {
	local rows=(
		"http_100_32_rps|HTTP 100 B, 32 conns: req/s"
		"http_100_32_p50|HTTP 100 B, 32 conns: p50 ms"
		"http_100_32_p99|HTTP 100 B, 32 conns: p99 ms"
		"http_100_32_dials|HTTP 100 B, 32 conns: upstream dials per 1,000 req"
		"http_100_256_rps|HTTP 100 B, 256 conns: req/s"
		"http_100_256_p50|HTTP 100 B, 256 conns: p50 ms"
		"http_100_256_p99|HTTP 100 B, 256 conns: p99 ms"
		"http_100_256_dials|HTTP 100 B, 256 conns: upstream dials per 1,000 req"
		"http_102400_32_rps|HTTP 100 KiB, 32 conns: req/s"
		"http_102400_32_p50|HTTP 100 KiB, 32 conns: p50 ms"
		"http_102400_32_p99|HTTP 100 KiB, 32 conns: p99 ms"
		"http_102400_32_dials|HTTP 100 KiB, 32 conns: upstream dials per 1,000 req"
		"http_102400_256_rps|HTTP 100 KiB, 256 conns: req/s"
		"http_102400_256_p50|HTTP 100 KiB, 256 conns: p50 ms"
		"http_102400_256_p99|HTTP 100 KiB, 256 conns: p99 ms"
		"http_102400_256_dials|HTTP 100 KiB, 256 conns: upstream dials per 1,000 req"
	)
	local c size conns
	for c in "${WS_CASES[@]}"; do
		size=${c%:*} conns=${c#*:}
		rows+=("ws_${size}_${conns}_rtps|WebSocket echo ${size} B, ${conns} conns: round trips/s"
			"ws_${size}_${conns}_p50|WebSocket echo ${size} B, ${conns} conns: p50 ms"
			"ws_${size}_${conns}_p99|WebSocket echo ${size} B, ${conns} conns: p99 ms"
			"ws_${size}_${conns}_cpu|WebSocket echo ${size} B, ${conns} conns: proxy CPU µs per round trip"
			"ws_${size}_${conns}_cpu_others|WebSocket echo ${size} B, ${conns} conns: client and upstream CPU µs per round trip")
	done
	for c in "${H2_CASES[@]}"; do
		IFS=: read -r size conns _ <<<"$c"
		rows+=("h2_${size}_${conns}_rps|HTTP/2 ${size} B, ${conns} conns x ${H2_STREAMS} streams: req/s"
			"h2_${size}_${conns}_p50|HTTP/2 ${size} B, ${conns} conns x ${H2_STREAMS} streams: p50 ms"
			"h2_${size}_${conns}_p99|HTTP/2 ${size} B, ${conns} conns x ${H2_STREAMS} streams: p99 ms"
			"h2_${size}_${conns}_dials|HTTP/2 ${size} B, ${conns} conns x ${H2_STREAMS} streams: upstream dials per 1,000 req")
	done
	rows+=(
		"idle_kib_per_ws|Idle WebSocket: KiB each ($IDLE_CONNS open)"
		"first_response_ms|Start to first proxied answer: ms"
	)
	local row metric label peer header="| Median of $ROUNDS rounds |" rule="|---|" line v n g
	for peer in "${PEERS[@]}"; do
		header+=" $peer |"
		rule+="---:|"
	done
	# Each Gatehouse peer gets a ratio column against each reference peer
	# present (nginx, Caddy).
	local ratios=() ref
	for ref in nginx caddy; do
		[[ " ${PEERS[*]} " == *" $ref "* ]] || continue
		for peer in "${PEERS[@]}"; do
			if [[ $peer == gatehouse* ]]; then
				ratios+=("$peer/$ref")
				header+=" $peer / $ref |"
				rule+="---:|"
			fi
		done
	done
	local pair any
	{
		echo "$header"
		echo "$rule"
		for row in "${rows[@]}"; do
			metric=${row%%|*} label=${row#*|}
			line="| $label |" any=""
			for peer in "${PEERS[@]}"; do
				v=$(median "$metric" "$peer")
				line+=" ${v:--} |" any+=$v
			done
			[[ -n $any ]] || continue # a phase that did not run
			for pair in "${ratios[@]}"; do
				if [[ $metric == *_dials ]]; then
					line+=" |" # a count of connections, where a ratio says nothing
					continue
				fi
				g=$(median "$metric" "${pair%/*}")
				n=$(median "$metric" "${pair#*/}")
				line+=" $(awk -v g="$g" -v n="$n" 'BEGIN { if (g == "" || n == "" || n == 0) print "-"; else printf "%.2f", g / n }') |"
			done
			echo "$line"
		done
		local errors
		errors=$(awk -F'\t' '$1 ~ /_errors$/ && $3 > 0 { printf "%s %s: %s; ", $1, $2, $3 }' "$OUT/raw.tsv")
		echo
		echo "wrk and h2load errors (non-2xx, failed streams or socket errors): ${errors:-none}"
	} >"$OUT/summary.md"
}

# --- main ----------------------------------------------------------------------

main() {
	install_missing
	build
	raise_fd_limit
	mkdir -p "$OUT"
	OUT=$(cd "$OUT" && pwd)
	WORK=$(mktemp -d /tmp/gatehouse-bench.XXXXXX)
	log "results in $OUT"
	local i peer
	for i in "${!PEERS[@]}"; do
		PORT[${PEERS[$i]}]=$((PEER_PORT_BASE + i))
	done
	{
		echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
		echo "machine: $(nproc) cores, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r)"
		echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
		echo "versions: $(nginx -v 2>&1), caddy $(caddy version | cut -d' ' -f1), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $(h2load --version | head -1), $(go version | cut -d' ' -f3)"
		echo "settings: PHASES=\"$(echo $PHASES)\" ROUNDS=$ROUNDS HTTP_DURATION=$HTTP_DURATION WS_DURATION=$WS_DURATION WS_CASES=\"${WS_CASES[*]}\" H2_CASES=\"${H2_CASES[*]}\" H2_STREAMS=$H2_STREAMS IDLE_CONNS=$IDLE_CONNS PROFILE_SECONDS=$PROFILE_SECONDS WRK_THREADS=$WRK_THREADS PEERS=\"${PEERS[*]}\""
	} >"$OUT/machine.txt"
	: >"$OUT/raw.tsv"

	start_upstream
	if [[ $PHASES == *" http "* || $PHASES == *" ws "* || $PHASES == *" h2 "* ]]; then
		for peer in "${PEERS[@]}"; do
			start_peer "$peer"
		done
		if [[ $PHASES == *" http "* ]]; then
			measure_http
		fi
		if [[ $PHASES == *" ws "* ]]; then
			measure_ws_echo
		fi
		if [[ $PHASES == *" h2 "* ]]; then
			measure_h2
		fi
		for peer in "${PEERS[@]}"; do
			stop_peer "$peer"
		done
	fi
	if [[ $PHASES == *" idle "* ]]; then
		# Fresh processes for memory, in rotating order across rounds.
		local r
		for ((r = 0; r < ROUNDS; r++)); do
			for peer in $(rotated "$r"); do
				measure_idle_ws "$peer"
			done
		done
	fi
	if [[ $PHASES == *" startup "* ]]; then
		measure_startup
	fi
	if [[ $PHASES == *" profile "* ]] && ((PROFILE_SECONDS > 0)); then
		for peer in "${PEERS[@]}"; do
			if [[ $peer == gatehouse* ]]; then
				profile_cpu "$peer"
			fi
		done
	fi
	if [[ $PHASES == *" profile "* ]]; then
		profile_idle_heap gatehouse
	fi
	echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
	summarize
	cat "$OUT/machine.txt" "$OUT/summary.md"
}

main "$@"
