#!/usr/bin/env bash
# GET/SET throughput of Vela (memory store, local topology) beside redis-server, same machine,
# same run: redis-benchmark with 50 clients, pipeline 1 and 16, 64-byte and 1 KiB values.
# Prints requests per second for each and the ratio Vela/Redis. Vela runs with its defaults: stats
# on, Prometheus metrics (per-command counters and latency histograms) on, one event loop.
#
# Usage: bench/getset.sh [requests-per-cell]   (default 200000; pipeline-16 cells send 5x as many)
# Environment: VELA_BENCH_ARGS adds flags to the Vela command line (e.g. "-stats_enabled=false");
# REPS (default 3) runs each cell that many times, alternating Redis and Vela, and prints the
# median of each, so that one noisy run on a shared machine does not decide the ratio.
# It also prints the CPU time (user + system, from /proc) each server spent per request: at
# pipeline 1 the single-threaded redis-benchmark is the bottleneck on a 2-core machine, so both
# servers' rates sit at its limit and move with the noise, while their CPU per request does not.
# THREADS, when set, runs redis-benchmark with that many threads (--threads): with 2 on a
# 2-core machine the client no longer bounds the rate, and the servers share the CPU with it.
# PIN=1 pins redis-benchmark to CPU 0 and each server to CPU 1 (taskset), the same for both:
# neither server then competes with the client for a core, nor gets more than one (Vela's Go
# runtime sees one CPU and runs its one loop in the scheduler: the conservative case for Vela).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port); VPORT=$(free_port); MPORT=$(free_port)

go build -o "$out/vela" .
SERVER_CPU=(); CLIENT_CPU=()
if [ "${PIN:-0}" = 1 ]; then SERVER_CPU=(taskset -c 1); CLIENT_CPU=(taskset -c 0); fi
"${SERVER_CPU[@]}" redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --logfile "$out/redis.log" &
RPID=$!
"${SERVER_CPU[@]}" "$out/vela" -listen "127.0.0.1:$VPORT" -metrics_listen "127.0.0.1:$MPORT" -log_level warn ${VELA_BENCH_ARGS:-} 2>"$out/vela.log" &
VPID=$!
for p in "$RPORT" "$VPORT"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

rps() { # port test pipeline size
  "${CLIENT_CPU[@]}" redis-benchmark -p "$1" -t "$2" -c 50 -P "$3" -d "$4" -n "$N" -r 100000 ${THREADS:+--threads "$THREADS"} -q --csv 2>/dev/null |
    awk -F'","' 'NR>1 {gsub(/"/,"",$2); print $2; exit}'
}

TICK=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system CPU of a process, in ticks
measure() { # pid port test pipeline size: prints "rps cpu_us_per_request"
  local t0 r
  t0=$(ticks "$1")
  r=$(rps "$2" "$3" "$4" "$5")
  awk -v r="$r" -v a="$t0" -v b="$(ticks "$1")" -v n="$N" -v hz="$TICK" 'BEGIN { printf "%s %.2f\n", r, (b - a) / hz * 1e6 / n }'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

REPS=${REPS:-3}
printf '%-4s %-5s %-6s %12s %12s %7s %9s %9s\n' test pipe value redis_rps vela_rps ratio redis_us vela_us
for t in set get; do
  for p in 1 16; do
    for d in 64 1024; do
      n=$N; [ "$p" -gt 1 ] && n=$((5 * N))
      rs=""; vs=""
      for _ in $(seq "$REPS"); do
        rs+="$(N=$n measure "$RPID" "$RPORT" "$t" "$p" "$d")"$'\n'
        vs+="$(N=$n measure "$VPID" "$VPORT" "$t" "$p" "$d")"$'\n'
      done
      r=$(printf '%s' "$rs" | cut -d' ' -f1 | median)
      v=$(printf '%s' "$vs" | cut -d' ' -f1 | median)
      rc=$(printf '%s' "$rs" | cut -d' ' -f2 | median)
      vc=$(printf '%s' "$vs" | cut -d' ' -f2 | median)
      ratio=$(awk -v a="$v" -v b="$r" 'BEGIN { if (b > 0) printf "%.2f", a/b; else print "n/a" }')
      printf '%-4s %-5s %-6s %12s %12s %7s %9s %9s\n' "$t" "$p" "$d" "$r" "$v" "$ratio" "$rc" "$vc"
    done
  done
done
