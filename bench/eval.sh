#!/usr/bin/env bash
# Script throughput of Vela (memory store, local topology) beside redis-server, same machine, same
# run: redis-benchmark with 50 clients, pipeline 1 and 16, sending EVALSHA of three scripts
# applications use, on random keys:
#   get   return redis.call('GET', KEYS[1])                                  (a read)
#   lock  SET NX PX, the acquire of a lock                                   (a write)
#   limit INCR and PEXPIRE on the first hit, a fixed-window rate limiter     (read-modify-write)
# Prints requests per second for each and the ratio Vela/Redis, median of REPS runs (default 3),
# alternating Redis and Vela.
#
# Usage: bench/eval.sh [requests-per-cell]   (default 100000; pipeline-16 cells send 5x as many)
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
done

declare -A BODY=(
  [get]="return redis.call('GET', KEYS[1])"
  [lock]="if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', 30000) then return 1 end return 0"
  [limit]="local c = redis.call('INCR', KEYS[1]) if c == 1 then redis.call('PEXPIRE', KEYS[1], 1000) end return c"
)
declare -A SHA
for name in get lock limit; do
  SHA[$name]=$(redis-cli -p "$RPORT" SCRIPT LOAD "${BODY[$name]}")
  v=$(redis-cli -p "$VPORT" SCRIPT LOAD "${BODY[$name]}")
  [ "$v" = "${SHA[$name]}" ] || { echo "SCRIPT LOAD: Vela answered $v, Redis ${SHA[$name]}" >&2; exit 1; }
  # Both must answer the script the same way before it is measured.
  r=$(redis-cli -p "$RPORT" EVALSHA "${SHA[$name]}" 1 "probe:$name" tok); v=$(redis-cli -p "$VPORT" EVALSHA "${SHA[$name]}" 1 "probe:$name" tok)
  [ "$r" = "$v" ] || { echo "$name: Redis answered $r, Vela $v" >&2; exit 1; }
done

rps() { # port name pipeline requests
  redis-benchmark -p "$1" -c 50 -P "$3" -n "$4" -r 100000 -q --csv EVALSHA "${SHA[$2]}" 1 "$2:__rand_int__" tok 2>/dev/null |
    awk -F'","' 'NR>1 {gsub(/"/,"",$2); print $2; exit}'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf '%-6s %-5s %12s %12s %7s\n' script pipe redis_rps vela_rps ratio
for name in get lock limit; do
  for p in 1 16; do
    n=$N; [ "$p" -gt 1 ] && n=$((5 * N))
    rs=""; vs=""
    for _ in $(seq "$REPS"); do
      rs+="$(rps "$RPORT" "$name" "$p" "$n")"$'\n'
      vs+="$(rps "$VPORT" "$name" "$p" "$n")"$'\n'
    done
    r=$(printf '%s' "$rs" | median); v=$(printf '%s' "$vs" | median)
    ratio=$(awk -v a="$v" -v b="$r" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "n/a" }')
    printf '%-6s %-5s %12s %12s %7s\n' "$name" "$p" "$r" "$v" "$ratio"
  done
done
