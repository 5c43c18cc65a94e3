#!/usr/bin/env bash
# Compare one node of a 3-node partitioned Vela cluster with twemproxy in front of 3
# redis-servers, on this machine, in the same run: redis-benchmark GET/SET, pipeline 1 and 16.
# With 3 members about 2/3 of the keys are forwarded by the node the benchmark talks to.
#
# Usage: bench/cluster.sh [requests] [clients]   (defaults 200000 and 50)
# KEYSPACE (default 100000) is redis-benchmark's -r: how many distinct keys.
# VELA_BIN runs that binary instead of building this tree; VELA_BENCH_ARGS adds flags to every
# Vela member's command line (e.g. "-near_cache.enabled=true").
# ROUNDS (default 3) alternates Vela and twemproxy that many times; the table gives medians.
# THREADS runs redis-benchmark with that many threads (--threads), so that the client is not what
# bounds the rates.
# The nodes are measured once their handoff windows have closed (30 s after the cluster forms).
# Each target's CPU per request is reported too, from /proc (user + system): for Vela the three
# nodes, for twemproxy nutcracker plus its three redis-servers. At pipeline 1 the single-threaded
# redis-benchmark is the bottleneck on a 2-core machine and rates move with the noise; CPU per
# request does not.
# TOPOLOGY=replicated runs a replicated Vela cluster instead (every member holds every key, reads
# are local, writes are copied to the two others before the reply) and compares it with the
# Redis tier doing the same job: a primary with two replicas attached (asynchronous
# replication), the benchmark talking to the primary.
# Output: bench/out/cluster-<time>.csv and a table on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200000}
ROUNDS=${ROUNDS:-3}
C=${2:-50}
TOPOLOGY=${TOPOLOGY:-partitioned}
OUT=bench/out
mkdir -p "$OUT"
TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

if [ -n "${VELA_BIN:-}" ]; then cp "$VELA_BIN" "$TMP/vela"; else go build -o "$TMP/vela" .; fi

BASE=${BENCH_PORT_BASE:-23000}
# Vela: three members; the benchmark talks to the first.
for i in 1 2 3; do
  join=()
  [ "$i" -gt 1 ] && join=(-cluster.join "127.0.0.1:$((BASE + 101))")
  "$TMP/vela" -listen "127.0.0.1:$((BASE + i))" -metrics_listen= -topology.type "$TOPOLOGY" \
    -cluster.node_name "vela-$i" -cluster.gossip_listen "127.0.0.1:$((BASE + 100 + i))" \
    -cluster.gossip_profile local -log_level warn "${join[@]}" ${VELA_BENCH_ARGS:-} 2>"$TMP/vela-$i.log" &
  PIDS+=($!)
done
# Redis: three servers behind twemproxy (ketama, like Vela's consistent hashing).
for i in 1 2 3; do
  replica=()
  [ "$TOPOLOGY" = replicated ] && [ "$i" -gt 1 ] && replica=(--replicaof 127.0.0.1 $((BASE + 201)))
  # --dir: a replica's initial sync writes an RDB file there, whatever --save says.
  mkdir -p "$TMP/redis-$i"
  redis-server --port $((BASE + 200 + i)) --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$TMP/redis-$i" --daemonize no --loglevel warning "${replica[@]}" >"$TMP/redis-$i.log" 2>&1 &
  PIDS+=($!)
done
cat >"$TMP/nutcracker.yml" <<YML
vela_bench:
  listen: 127.0.0.1:$((BASE + 300))
  hash: fnv1a_64
  distribution: ketama
  redis: true
  server_connections: 1
  timeout: 2000
  servers:
   - 127.0.0.1:$((BASE + 201)):1
   - 127.0.0.1:$((BASE + 202)):1
   - 127.0.0.1:$((BASE + 203)):1
YML
# Its own stats port: the default (22222) may be taken by another nutcracker on the machine.
nutcracker -c "$TMP/nutcracker.yml" -s $((BASE + 301)) -o "$TMP/nutcracker.log" &
PIDS+=($!)

wait_port() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "port $1 not up" >&2; exit 1; }
for p in $((BASE + 1)) $((BASE + 2)) $((BASE + 3)) $((BASE + 201)) $((BASE + 202)) $((BASE + 203)); do wait_port "$p"; done
sleep 0.5
for _ in $(seq 100); do
  n=$(redis-cli -p $((BASE + 1)) --no-raw vela ring 2>/dev/null | grep -c '^ *[0-9]*) "vela-' || true)
  [ "$n" -ge 3 ] && break
  sleep 0.1
done
redis-cli -p $((BASE + 1)) vela nodes | paste - - - - || true
# Measure the settled cluster: for 30 s after a membership change each node keeps a handoff
# window open (it fences handed-over copies and serves its peers' forwards on goroutines).
echo "waiting for the handoff windows to close (up to 40 s)" >&2
settled='^cluster_handoff_window:0'
[ "$TOPOLOGY" = replicated ] && settled='^cluster_ready:1'
for _ in $(seq 400); do
  open=0
  for i in 1 2 3; do
    redis-cli -p $((BASE + i)) info vela 2>/dev/null | grep -q "$settled" || open=1
  done
  [ "$open" = 0 ] && break
  sleep 0.1
done
up=""
warm=$((BASE + 300)) # with TOPOLOGY=replicated two of the servers are read-only replicas: warm the primary
[ "$TOPOLOGY" = replicated ] && warm=$((BASE + 201))
for _ in $(seq 100); do redis-cli -p "$warm" set warm up 2>/dev/null | grep -q OK && { up=1; break; }; sleep 0.1; done
[ -n "$up" ] || { echo "twemproxy did not start:" >&2; cat "$TMP/nutcracker.log" >&2; exit 1; }

CSV="$OUT/cluster-$(date +%Y%m%d-%H%M%S).csv"
echo "target,pipeline,test,rps,p50_ms" >"$CSV"
CPUCSV="$TMP/cpu.csv"
TICK=$(getconf CLK_TCK)
ticks() { for p in "$@"; do awk '{ print $14 + $15 }' "/proc/$p/stat"; done | awk '{ s += $1 } END { print s }'; }
alive() { for i in 1 2 3; do redis-cli -p $((BASE + 200 + i)) ping >/dev/null 2>&1 || echo "redis-server $i is down" >&2; done; }
# The peer Vela is compared with: twemproxy (partitioned), or the Redis primary (replicated,
# whose CPU counts its two replicas too). It keeps the name "twemproxy" in the CSV.
PEER_PORT=$((BASE + 300))
PEER_PIDS=("${PIDS[@]:3:4}")
if [ "$TOPOLOGY" = replicated ]; then PEER_PORT=$((BASE + 201)); PEER_PIDS=("${PIDS[@]:3:3}"); fi
run() { # target port pipeline
  local pids t0
  if [ "$1" = twemproxy ]; then alive; pids=("${PEER_PIDS[@]}"); else pids=("${PIDS[@]:0:3}"); fi
  t0=$(ticks "${pids[@]}")
  timeout 300 redis-benchmark -h 127.0.0.1 -p "$2" -t set,get -n "$N" -c "$C" -P "$3" -r "${KEYSPACE:-100000}" ${THREADS:+--threads "$THREADS"} --csv 2>/dev/null |
    tr -d '"' | awk -F, -v t="$1" -v p="$3" 'NR>1 { print t "," p "," $1 "," $2 "," $5 }' >>"$CSV" ||
    echo "$1 pipeline $3: redis-benchmark failed or timed out" >&2
  # set and get: 2N requests
  awk -v t="$1" -v p="$3" -v a="$t0" -v b="$(ticks "${pids[@]}")" -v n="$N" -v hz="$TICK" \
    'BEGIN { printf "%s,%s,%.2f\n", t, p, (b - a) / hz * 1e6 / (2 * n) }' >>"$CPUCSV"
}
# Alternate targets so both see the same machine noise.
for round in $(seq "$ROUNDS"); do
  for P in 1 16; do
    run vela $((BASE + 1)) "$P"
    run twemproxy "$PEER_PORT" "$P"
  done
done
echo "forwards on vela-1: $(redis-cli -p $((BASE + 1)) stats | paste - - | awk '$1=="forwards"{print $2}')"
for i in 1 2 3; do echo "vela-$i keys: $(redis-cli -p $((BASE + i)) info keyspace | grep db0 || echo none)"; done
echo
peer=twemproxy
[ "$TOPOLOGY" = replicated ] && peer="Redis primary with 2 replicas (column twemproxy)"
echo "median of $ROUNDS rounds (requests/s), Vela ($TOPOLOGY)/$peer"
awk -F, 'NR>1 { k=$2","$3; n[$1","k]++; v[$1","k","n[$1","k]]=$4; keys[k]=1 }
  function med(t, k,   m, i, j, a, x) {
    m = n[t","k]; for (i = 1; i <= m; i++) a[i] = v[t","k","i]
    for (i = 2; i <= m; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
    return m % 2 ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
  }
  END { printf "%-5s %-4s %12s %12s %7s\n", "pipe", "test", "twemproxy", "vela", "ratio"
    for (k in keys) { split(k, f, ","); t = med("twemproxy", k); w = med("vela", k)
      printf "%-5s %-4s %12.0f %12.0f %7.2f\n", f[1], f[2], t, w, (t > 0 ? w / t : 0) } }' "$CSV" | sort -k1,1n -k2,2
echo
echo "CPU µs per request (median; Vela: its 3 nodes; twemproxy: nutcracker and its 3 redis-servers)"
awk -F, '{ k=$1","$2; n[k]++; v[k","n[k]]=$3 }
  function med(k,   m, i, j, a, x) {
    m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k","i]
    for (i = 2; i <= m; i++) { x = a[i]; for (j = i - 1; j > 0 && a[j] > x; j--) a[j+1] = a[j]; a[j+1] = x }
    return m % 2 ? a[(m+1)/2] : (a[m/2] + a[m/2+1]) / 2
  }
  END { printf "%-5s %10s %10s\n", "pipe", "twemproxy", "vela"
    for (p = 1; p <= 16; p += 15) printf "%-5s %10.2f %10.2f\n", p, med("twemproxy," p), med("vela," p) }' "$CPUCSV"
echo "raw: $CSV"
