#!/usr/bin/env bash
# Bit command throughput of Vela (memory store, local topology) beside redis-server, same
# machine, same run: redis-benchmark with 50 clients, pipeline 1 and 16, on
#   setbit     SETBIT on random small keys                          (a write, a tiny value)
#   getbit     GETBIT of one bit of a 1 MiB bitmap                  (a read of a large value)
#   setbit-1m  SETBIT of one bit of a 1 MiB bitmap                  (a write to a large value)
#   bitcount   BITCOUNT of a 64 KiB range of the 1 MiB bitmap       (work on the value)
#   bitfield   BITFIELD INCRBY u32 on random small keys             (a counter in a bitfield)
# Prints requests per second for each and the ratio Vela/Redis, median of REPS runs (default 3),
# alternating Redis and Vela.
#
# Usage: bench/bits.sh [requests-per-cell]   (default 100000; pipeline-16 cells send 5x as many)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
REPS=${REPS:-3}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port); VPORT=$(free_port); MPORT=$(free_port)

go build -o "$out/vela" .
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --logfile "$out/redis.log" &
"$out/vela" -listen "127.0.0.1:$VPORT" -metrics_listen "127.0.0.1:$MPORT" -log_level warn 2>"$out/vela.log" &
for p in "$RPORT" "$VPORT"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$p" SETBIT big $((8 * 1024 * 1024 - 1)) 1 >/dev/null # a 1 MiB bitmap
done

declare -A CMD=(
  [setbit]="SETBIT bit:__rand_int__ 100 1"
  [getbit]="GETBIT big 4000000"
  [setbit-1m]="SETBIT big 4000000 1"
  [bitcount]="BITCOUNT big 0 65535"
  [bitfield]="BITFIELD bf:__rand_int__ INCRBY u32 0 1"
)
for name in setbit getbit setbit-1m bitcount bitfield; do
  # Both must answer the same before it is measured.
  r=$(redis-cli -p "$RPORT" ${CMD[$name]//__rand_int__/probe}); v=$(redis-cli -p "$VPORT" ${CMD[$name]//__rand_int__/probe})
  [ "$r" = "$v" ] || { echo "$name: Redis answered $r, Vela $v" >&2; exit 1; }
done

rps() { # port name pipeline requests
  # shellcheck disable=SC2086 # the command's words
  redis-benchmark -p "$1" -c 50 -P "$3" -n "$4" -r 100000 -q --csv ${CMD[$2]} 2>/dev/null |
    awk -F'","' 'NR>1 {gsub(/"/,"",$2); print $2; exit}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-9s %-5s %12s %12s %7s\n' command pipe redis_rps vela_rps ratio
for name in setbit getbit setbit-1m bitcount bitfield; do
  for p in 1 16; do
    n=$N; [ "$p" -gt 1 ] && n=$((5 * N))
    rs=""; vs=""
    for _ in $(seq "$REPS"); do
      rs+="$(rps "$RPORT" "$name" "$p" "$n")"$'\n'
      vs+="$(rps "$VPORT" "$name" "$p" "$n")"$'\n'
    done
    r=$(printf '%s' "$rs" | median); v=$(printf '%s' "$vs" | median)
    ratio=$(awk -v a="$v" -v b="$r" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "n/a" }')
    printf '%-9s %-5s %12s %12s %7s\n' "$name" "$p" "$r" "$v" "$ratio"
  done
done
