#!/usr/bin/env bash
# service-cpu.sh measures what a dashboard attached over the control socket
# costs `gatehouse serve`: with CONNS idle proxied WebSockets open, the
# service's CPU time over WINDOW seconds alone, then over WINDOW seconds
# with bench/dashload attached (totals stream + a 50-row snapshot a second).
#
#   bench/service-cpu.sh            CONNS=9000 WINDOW=60
#
# The open-file limit here is 20,000 per process and a proxied WebSocket
# costs the proxy two descriptors, so 9,000 is the most one proxy holds.
set -euo pipefail
cd "$(dirname "$0")/.."
CONNS=${CONNS:-9000}
WINDOW=${WINDOW:-60}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
ulimit -n "$(ulimit -Hn)"

go build -o "$WORK/gatehouse" ./cmd/gatehouse
for t in upstream wsload dashload; do go build -o "$WORK/$t" "./bench/$t"; done

"$WORK/upstream" -addr 127.0.0.1:19443 -cert-dir "$WORK" >"$WORK/upstream.log" 2>&1 &
sleep 1
cat >"$WORK/config.json" <<JSON
{"hostname": "localhost", "upstream": "https://127.0.0.1:19443", "upstream_insecure": true,
 "tls": "self-signed", "http_addr": "off", "https_addr": "127.0.0.1:18443", "status_addr": "off",
 "state_dir": "$WORK/state"}
JSON
"$WORK/gatehouse" serve --config "$WORK/config.json" --control-socket "$WORK/control.sock" --log-level warn >"$WORK/serve.log" 2>&1 &
SERVE=$!
for _ in $(seq 100); do [[ -S $WORK/control.sock ]] && break; sleep 0.1; done

"$WORK/wsload" -mode idle -url wss://localhost:18443/ws/client/ -conns "$CONNS" -hold 30m >"$WORK/wsload.out" 2>&1 &
for _ in $(seq 600); do grep -q '^open=' "$WORK/wsload.out" 2>/dev/null && break; sleep 0.5; done
grep '^open=' "$WORK/wsload.out" || { cat "$WORK/wsload.out" "$WORK/serve.log"; exit 1; }

# cpu_ticks: the service's user+system CPU time in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVE/stat"; }
hz=$(getconf CLK_TCK)
measure() { # label, command...
	local label=$1 before after
	shift
	before=$(cpu_ticks)
	"$@"
	after=$(cpu_ticks)
	awk -v l="$label" -v t=$((after - before)) -v hz="$hz" -v w="$WINDOW" \
		'BEGIN { printf "%-22s %6.2f%% of a core (%.2f s CPU in %d s)\n", l, 100 * t / hz / w, t / hz, w }'
}
sleep 5 # let the opening settle
measure "idle, nobody watching" sleep "$WINDOW"
measure "dashboard attached" "$WORK/dashload" -socket "$WORK/control.sock" -rows 50 -duration "${WINDOW}s"
measure "idle again" sleep "$WINDOW"
