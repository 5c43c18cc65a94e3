#!/usr/bin/env bash
# A/B of two Vela builds in a 3-member cluster on this machine: for each binary in turn (the
# list is run ROUNDS times, alternating), start three members, wait until they have formed and
# their handoff windows have closed, then run redis-benchmark against the first member at
# pipeline 16 and 1, and print requests/s and each member's CPU µs per request (user + system,
# from /proc, over the measured run).
#
# Usage: bench/ab-cluster.sh BIN [BIN…]
#   TOPOLOGY  replicated (default) or partitioned
#   REPLICAS  cluster.replicas for the partitioned topology (default 2)
#   TEST      set (default) or get
#   N         requests per measured run (default 300000), after a warm-up of N/6
#   ROUNDS    how many times the list of binaries is run (default 2)
#   SETTLE    seconds to wait after forming (default 31: the handoff windows last 30 s)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BIN [BIN…]" >&2; exit 2; }
TOPOLOGY=${TOPOLOGY:-replicated}
REPLICAS=${REPLICAS:-2}
TEST=${TEST:-set}
N=${N:-300000}
ROUNDS=${ROUNDS:-2}
SETTLE=${SETTLE:-31}
BASE=${BENCH_PORT_BASE:-25000}
PIDS=()
stop() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PIDS=()
}
trap stop EXIT
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
us() { echo "scale=2; $1 * 1000000 / $(getconf CLK_TCK) / $N" | bc; }

for round in $(seq "$ROUNDS"); do
  for bin in "$@"; do
    extra=()
    [ "$TOPOLOGY" = partitioned ] && extra=(-cluster.replicas "$REPLICAS")
    for i in 1 2 3; do
      join=()
      [ "$i" -gt 1 ] && join=(-cluster.join "127.0.0.1:$((BASE + 101))")
      "$bin" -listen "127.0.0.1:$((BASE + i))" -metrics_listen= -topology.type "$TOPOLOGY" "${extra[@]}" \
        -cluster.node_name "ab-$i" -cluster.gossip_listen "127.0.0.1:$((BASE + 100 + i))" \
        -cluster.gossip_profile local -log_level warn "${join[@]}" 2>/dev/null &
      PIDS+=($!)
    done
    for _ in $(seq 100); do
      [ "$(redis-cli -p $((BASE + 1)) vela nodes 2>/dev/null | grep -c alive)" = 3 ] && break
      sleep 0.2
    done
    sleep "$SETTLE"
    for P in 16 1; do
      redis-benchmark -p $((BASE + 1)) -t "$TEST" -n $((N / 6)) -P "$P" -c 50 -r 100000 -q >/dev/null 2>&1
      before=(); for p in "${PIDS[@]}"; do before+=("$(cpu "$p")"); done
      rps=$(redis-benchmark -p $((BASE + 1)) -t "$TEST" -n "$N" -P "$P" -c 50 -r 100000 -q 2>&1 |
        tr '\r' '\n' | awk '/requests per second/ {print $2}')
      line="round $round $bin $TEST P$P rps=$rps cpu_us"
      for k in 0 1 2; do line+=" $(us $(( $(cpu "${PIDS[$k]}") - before[k] )))"; done
      echo "$line"
    done
    stop
  done
done
