#!/usr/bin/env bash
# PUBLISH throughput of Vela (one node, its defaults) beside redis-server, same machine, same run:
# SUBSCRIBERS redis-cli subscribers of the channel on each server (default 10), then
# redis-benchmark with 50 clients sending PUBLISH at pipeline 1 and 16, 64-byte messages.
# Prints requests per second for each, the ratio Vela/Redis, each server's CPU time (user +
# system) per PUBLISH, which the subscribers' redis-cli processes competing for the two cores
# move less than the rates, and checks that every subscriber received every message.
#
# Usage: bench/pubsub.sh [requests-per-cell]   (default 100000; pipeline-16 cells send 5x as many)
# Environment: REPS (default 3) runs each cell that many times, alternating, and prints medians.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
SUBS=${SUBSCRIBERS:-10}
REPS=${REPS:-3}
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$out"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port); VPORT=$(free_port)
go build -o "$out/vela" .
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --logfile "$out/redis.log" &
RPID=$!
"$out/vela" -listen "127.0.0.1:$VPORT" -metrics_listen "" -log_level warn 2>"$out/vela.log" &
VPID=$!
for p in "$RPORT" "$VPORT"; do
  for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
  for i in $(seq "$SUBS"); do
    redis-cli -p "$p" subscribe bench >"$out/sub-$p-$i" 2>&1 &
  done
done
for p in "$RPORT" "$VPORT"; do # every subscriber has subscribed
  for _ in $(seq 100); do
    [ "$(redis-cli -p "$p" pubsub numsub bench | tail -1)" = "$SUBS" ] && break; sleep 0.1
  done
done

rps() { # port pipeline requests
  redis-benchmark -p "$1" -c 50 -P "$2" -n "$3" -q --csv PUBLISH bench "$(printf '%064d' 0)" 2>/dev/null |
    awk -F'","' 'NR>1 {gsub(/"/,"",$2); print $2; exit}'
}
TICK=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # user + system CPU of a process, in ticks
measure() { # pid port pipeline requests: prints "rps cpu_us_per_request"
  local t0 r
  t0=$(ticks "$1")
  r=$(rps "$2" "$3" "$4")
  awk -v r="$r" -v a="$t0" -v b="$(ticks "$1")" -v n="$4" -v hz="$TICK" 'BEGIN { printf "%s %.2f\n", r, (b - a) / hz * 1e6 / n }'
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
sent=0
printf '%-5s %12s %12s %7s %9s %9s\n' pipe redis_rps vela_rps ratio redis_us vela_us
for p in 1 16; do
  n=$N; [ "$p" -gt 1 ] && n=$((5 * N))
  rs=""; vs=""
  for _ in $(seq "$REPS"); do
    rs+="$(measure "$RPID" "$RPORT" "$p" "$n")"$'\n'
    vs+="$(measure "$VPID" "$VPORT" "$p" "$n")"$'\n'
    sent=$((sent + n))
  done
  r=$(printf '%s' "$rs" | cut -d' ' -f1 | median); v=$(printf '%s' "$vs" | cut -d' ' -f1 | median)
  rc=$(printf '%s' "$rs" | cut -d' ' -f2 | median); vc=$(printf '%s' "$vs" | cut -d' ' -f2 | median)
  printf '%-5s %12s %12s %7s %9s %9s\n' "$p" "$r" "$v" "$(awk -v a="$v" -v b="$r" 'BEGIN { printf "%.2f", a/b }')" "$rc" "$vc"
done
sleep 1 # the last messages reach the subscribers
for port in "$RPORT" "$VPORT"; do
  for i in $(seq "$SUBS"); do # redis-cli prints each message as three lines
    got=$(( $(grep -c '^message$' "$out/sub-$port-$i" || true) ))
    [ "$got" -eq "$sent" ] || echo "subscriber $i of port $port received $got of $sent messages"
  done
done
