#!/usr/bin/env bash
# GET/SET throughput through Vela on the redis store, beside the same Redis directly and
# twemproxy (nutcracker) in front of it, same run: redis-benchmark with 50 clients, pipeline 1
# and 16. Prints requests per second and the ratios Vela/twemproxy and Vela/Redis, and the CPU
# time the proxy itself spent per request (from /proc, user + system): at pipeline 1 the
# single-threaded redis-benchmark is the bottleneck on a 2-core machine, so the proxies' rates
# sit close together and move with the noise, while their CPU per request does not.
#
# The machine is shared and noisy: each cell runs the three targets in turn ROUNDS times and
# reports the median of each.
#
# Usage: bench/redisstore.sh [requests-per-run] [rounds]   (defaults 50000 and 3)
# Environment: VELA_BIN runs that binary instead of building this tree; VELA_BENCH_ARGS adds flags to the Vela command line; VELA_URL_QUERY is appended to
# the store URL (e.g. "?vela_pipeline_conns=1"). THREADS runs redis-benchmark with that many
# threads (--threads), so that the client is not what bounds the rates.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50000}
ROUNDS=${2:-3}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port); VPORT=$(free_port); TPORT=$(free_port); SPORT=$(free_port)

if [ -n "${VELA_BIN:-}" ]; then cp "$VELA_BIN" "$out/vela"; else go build -o "$out/vela" .; fi
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --logfile "$out/redis.log" &
sed -e "s/LISTEN/$TPORT/" -e "s/REDIS/$RPORT/" bench/twemproxy.yml >"$out/twemproxy.yml"
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
nutcracker -c "$out/twemproxy.yml" -s "$SPORT" -o "$out/twemproxy.log" &
TPID=$!
"$out/vela" -listen "127.0.0.1:$VPORT" -metrics_listen "" -log_level warn \
  -store.type redis -store.redis.url "redis://127.0.0.1:$RPORT/0${VELA_URL_QUERY:-}" ${VELA_BENCH_ARGS:-} 2>"$out/vela.log" &
VPID=$!
for p in "$VPORT" "$TPORT"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$p" ping >/dev/null 2>&1 || { echo "port $p did not answer"; cat "$out"/*.log; exit 1; }
done

TICK=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system CPU of a process, in ticks
CPU=0 # CPU µs per request of the last measured process
rps() { # port test pipeline [pid whose CPU to measure]
  local t0=0
  [ -n "${4:-}" ] && t0=$(ticks "$4")
  timeout 120 redis-benchmark -p "$1" -t "$2" -c 50 -P "$3" -n "$N" -r 100000 ${THREADS:+--threads "$THREADS"} -q --csv 2>/dev/null |
    awk -F'","' 'NR>1 {gsub(/"/,"",$2); print $2; exit}'
  [ -n "${4:-}" ] && CPU=$(awk -v a="$t0" -v b="$(ticks "$4")" -v n="$N" -v hz="$TICK" 'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / n }')
  return 0
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "n/a" }'; }

printf '%-4s %-5s %12s %12s %12s %10s %10s %9s %9s\n' test pipe redis_rps twemproxy vela vela/twem vela/redis twem_us vela_us
for t in set get; do
  for p in 1 16; do
    rs=; ws=; vs=; wc=; vc=
    for _ in $(seq "$ROUNDS"); do
      rs="$rs $(rps "$RPORT" "$t" "$p")"
      x=$(rps "$TPORT" "$t" "$p" "$TPID"; echo " $CPU")
      ws="$ws ${x% *}"; wc="$wc ${x##* }"
      x=$(rps "$VPORT" "$t" "$p" "$VPID"; echo " $CPU")
      vs="$vs ${x% *}"; vc="$vc ${x##* }"
    done
    r=$(echo "$rs" | median); w=$(echo "$ws" | median); v=$(echo "$vs" | median)
    printf '%-4s %-5s %12s %12s %12s %10s %10s %9s %9s\n' "$t" "$p" "$r" "$w" "$v" "$(ratio "$v" "$w")" "$(ratio "$v" "$r")" \
      "$(echo "$wc" | median)" "$(echo "$vc" | median)"
  done
done
