#!/usr/bin/env bash
# SET throughput of Vela on the disk store (bbolt, fsync per committed batch) with 1 and with 50
# clients, same run, same file: shows the group commit (50 clients should reach >= 10x one).
#
# Usage: bench/disk.sh [requests-single] [requests-50]   (defaults 10000 and 100000)
# Environment: VELA_BIN runs that binary instead of building this tree.
set -euo pipefail
cd "$(dirname "$0")/.."
N1=${1:-10000}
N50=${2:-100000}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
VPORT=$(free_port)

if [ -n "${VELA_BIN:-}" ]; then cp "$VELA_BIN" "$out/vela"; else go build -o "$out/vela" .; fi
"$out/vela" -listen "127.0.0.1:$VPORT" -metrics_listen "" -log_level warn \
  -store.type disk -store.disk.path "$out/data/vela.db" 2>"$out/vela.log" &
for _ in $(seq 50); do redis-cli -p "$VPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

rps() { # clients requests
  timeout 300 redis-benchmark -p "$VPORT" -t set -c "$1" -n "$2" -r 100000 -q --csv 2>/dev/null |
    awk -F'","' 'NR>1 {gsub(/"/,"",$2); print $2; exit}'
}
one=$(rps 1 "$N1")
fifty=$(rps 50 "$N50")
printf '%-10s %12s\n' clients set_rps
printf '%-10s %12s\n' 1 "$one" 50 "$fifty"
awk -v a="$fifty" -v b="$one" 'BEGIN { printf "ratio 50/1: %.1fx\n", a/b }'
