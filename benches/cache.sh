#!/usr/bin/env bash
# The result cache, measured side by side in one run:
#   direct PostgreSQL  vs  Helios with [cache] mode = "auto", every read a hit
#
# - pgbench -S (8 clients, 2 threads) in simple and prepared modes, rounds
#   interleaved, median tps; before each mode every aid is read once through
#   Helios with the very statement pgbench -S sends, so the measured reads
#   are all hits. The hit ratio over the measured rounds comes from
#   SHOW HELIOS CACHES.
# - An aggregate over a generated table (~100 ms on PostgreSQL), one client,
#   p50 latency from pgbench's per-transaction log: direct vs Helios (the
#   first execution fills the entry, the others are hits).
#
# Usage: benches/cache.sh            (DURATION=10 ROUNDS=3 SCALE=10 by default;
#                                     HELIOS_BIN=path measures that binary)
#        DURATION=5 ROUNDS=1 SCALE=1 benches/cache.sh   (a quick look)
# Needs: PostgreSQL server binaries, pgbench, psql (.ci/run installs them).
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
# Helios's event loops (server.worker_threads; 0 = one per core, the default).
HELIOS_WORKERS=${HELIOS_WORKERS:-0}
# The aggregate: rows of the generated table, and executions per target.
AGG_ROWS=${AGG_ROWS:-3000000}
AGG_TX=${AGG_TX:-40}
# [cache] bounds. Every entry weighs at least max_memory / max_entries; with
# both modes warmed there are 2 x 100,000 x SCALE entries.
CACHE_MAX_MEMORY=${CACHE_MAX_MEMORY:-2GB}
CACHE_MAX_ENTRIES=${CACHE_MAX_ENTRIES:-4000000}

here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}

pg_bindir() {
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
BIN=$(pg_bindir)
[ -x "$BIN/initdb" ] || { echo "no PostgreSQL server binaries found" >&2; exit 1; }

# Run as the postgres user when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/helios-cache-bench.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres "$work"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$work/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

# HELIOS_BIN: a Helios binary to measure instead of building one.
if [ -n "${HELIOS_BIN:-}" ]; then
  HELIOS=$HELIOS_BIN
else
  echo "== building Helios (release)"
  (cd "$here" && cargo build --release --quiet --bin helios)
  HELIOS="$CARGO_TARGET_DIR/release/helios"
fi

PG_PORT=$(free_port); HELIOS_PORT=$(free_port)
ROWS=$((100000 * SCALE))

echo "== starting PostgreSQL ($("$BIN/postgres" --version)) on port $PG_PORT"
as_pg "$BIN/initdb" -D "$work/data" -A trust -U postgres >/dev/null
as_pg "$BIN/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
  -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB" \
  start >/dev/null
echo "== pgbench -i -s $SCALE ($ROWS rows); table big ($AGG_ROWS rows)"
as_pg "$BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >/dev/null 2>&1
as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres <<EOF
CREATE TABLE big AS SELECT g AS id, g % 1000 AS k, random() AS v FROM generate_series(1, $AGG_ROWS) g;
VACUUM ANALYZE big;
EOF

# Helios reaches PostgreSQL over its Unix socket, as a proxy on the database
# host would.
cat >"$work/helios.toml" <<EOF
[admin]
# Metrics on, as by default; any free port (a running Helios may hold 9930).
listen = "127.0.0.1:0"
[server]
listen = "127.0.0.1:$HELIOS_PORT"
worker_threads = $HELIOS_WORKERS
[upstream]
url = "host=$work port=$PG_PORT user=postgres"
[pool]
max_size = 100
[log]
level = "warn"
[cache]
mode = "auto"
ttl = "1h"
max_memory = "$CACHE_MAX_MEMORY"
max_entries = $CACHE_MAX_ENTRIES
EOF
"$HELIOS" --config "$work/helios.toml" 2>"$work/helios.log" &
pids+=($!); HELIOS_PID=$!

for i in $(seq 50); do
  if as_pg "$BIN/psql" -X -q -h 127.0.0.1 -p "$HELIOS_PORT" -U postgres -c 'select 1' postgres >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done

# pgbench -S against a port; prints tps.
bench() {
  local port=$1 mode=$2
  as_pg "$BIN/pgbench" -S -n -M "$mode" -c "$CLIENTS" -j "$THREADS" -T "$DURATION" \
    -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 |
    awk '/^tps =/ {tps=$3} END {print tps}'
}

# Hits, misses, entries and bytes of the statement shapes whose text
# contains $1, from SHOW HELIOS CACHES.
cache_counts() {
  as_pg "$BIN/psql" -X -A -t -F $'\t' -h 127.0.0.1 -p "$HELIOS_PORT" -U postgres \
    -c 'SHOW HELIOS CACHES' postgres |
    awk -F'\t' -v pat="$1" 'index($2, pat) {h+=$5; m+=$6; e+=$7; b+=$8} END {print h+0, m+0, e+0, b+0}'
}

median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.1f}")' "$@"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }
hit_ratio() { python3 -c "import sys; h,m=int(sys.argv[1]),int(sys.argv[2]); print(f'{100*h/(h+m):.2f}%' if h+m else 'n/a')" "$1" "$2"; }

# Every aid once, in order: client c reads c+1, c+1+CLIENTS, ... The SQL line
# is pgbench -S's own (pgbench --show-script=select-only), byte for byte.
cat >"$work/warm.sql" <<EOF
\set n :n + 1
\set aid :client_id + 1 + (:n - 1) * $CLIENTS
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
EOF
warm() {
  local mode=$1 t0 t1
  t0=$(date +%s.%N)
  as_pg "$BIN/pgbench" -n -M "$mode" -f "$work/warm.sql" -D n=0 \
    -c "$CLIENTS" -j "$THREADS" -t $(((ROWS + CLIENTS - 1) / CLIENTS)) \
    -h 127.0.0.1 -p "$HELIOS_PORT" -U postgres postgres >"$work/warm-$mode.out" 2>&1 ||
    { cat "$work/warm-$mode.out" >&2; exit 1; }
  t1=$(date +%s.%N)
  python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); n=int(sys.argv[3]); print(f'   warmed {n} aids in {s:.1f} s ({n/s:.0f} reads/s, all misses)')" "$t0" "$t1" "$ROWS"
}

declare -A TPS HITS
targets=(direct helios)
port_of() { case $1 in direct) echo "$PG_PORT";; helios) echo "$HELIOS_PORT";; esac; }
shape='FROM pgbench_accounts WHERE aid'

for mode in simple prepared; do
  echo "== pgbench -S -M $mode: warming the cache through Helios"
  warm "$mode"
  read -r _ _ entries bytes < <(cache_counts "$shape")
  echo "   pgbench_accounts entries now: $entries ($((bytes / 1048576)) MB as stored)"
  echo "== pgbench -S -M $mode, scale $SCALE, $CLIENTS clients, $THREADS threads, ${DURATION}s x $ROUNDS rounds (interleaved)"
  read -r h0 m0 _ _ < <(cache_counts "$shape")
  for r in $(seq "$ROUNDS"); do
    for k in 0 1; do
      t=${targets[$(( (k + r) % 2 ))]}
      read -r tps < <(bench "$(port_of "$t")" "$mode")
      TPS[$mode,$t]="${TPS[$mode,$t]:-} $tps"
    done
  done
  read -r h1 m1 _ _ < <(cache_counts "$shape")
  HITS[$mode]="$((h1 - h0)) $((m1 - m0))"
  echo "   tps direct:${TPS[$mode,direct]}; helios:${TPS[$mode,helios]}; hits $((h1 - h0)), misses $((m1 - m0))"
done

# The aggregate: one client, simple protocol, per-transaction latencies.
AGG_SQL='SELECT k, count(*), sum(v) FROM big GROUP BY k ORDER BY k;'
echo "$AGG_SQL" >"$work/agg.sql"
# Latency column (us) of a pgbench --log file -> "p50_ms first_ms".
p50() {
  python3 - "$@" <<'EOF'
import sys, statistics
lat = []
for path in sys.argv[1:]:
    with open(path) as f:
        lat += [int(line.split()[2]) for line in f]
print(f"{statistics.median(lat) / 1000:.3f} {lat[0] / 1000:.3f}")
EOF
}
agg() {
  local t=$1
  as_pg "$BIN/pgbench" -n -f "$work/agg.sql" -c 1 -j 1 -t "$AGG_TX" \
    --log --log-prefix="$work/log-agg-$t" \
    -h 127.0.0.1 -p "$(port_of "$t")" -U postgres postgres >"$work/agg-$t.out" 2>&1 ||
    { cat "$work/agg-$t.out" >&2; exit 1; }
  p50 "$work"/log-agg-"$t".*
}
echo "== aggregate over big ($AGG_ROWS rows, 1,000 groups), 1 client, $AGG_TX executions each"
echo "   $AGG_SQL"
read -r ah0 am0 _ _ < <(cache_counts 'FROM big')
read -r agg_direct agg_direct_first < <(agg direct)
read -r agg_helios agg_helios_first < <(agg helios)
read -r ah1 am1 agg_entries agg_bytes < <(cache_counts 'FROM big')
echo "   direct p50 $agg_direct ms; helios p50 $agg_helios ms (first execution, the fill: $agg_helios_first ms); hits $((ah1 - ah0)), misses $((am1 - am0)), entry $agg_bytes bytes"

problems=$(grep -c -E ' (WARN|ERROR) ' "$work/helios.log" || true)
rss=$(awk '/VmHWM/ {print $2}' /proc/$HELIOS_PID/status)

echo
echo "cache: mode = \"auto\", max_memory = \"$CACHE_MAX_MEMORY\", max_entries = $CACHE_MAX_ENTRIES; pgbench -S scale $SCALE ($ROWS aids), $CLIENTS clients, $THREADS threads, ${DURATION}s x $ROUNDS rounds"
printf '%-22s %12s %14s %10s %10s\n' "pgbench -S" direct "helios cached" helios/d "hit ratio"
for mode in simple prepared; do
  d=$(median ${TPS[$mode,direct]}); h=$(median ${TPS[$mode,helios]})
  printf '%-22s %12s %14s %10s %10s\n' "$mode (tps)" "$d" "$h" "$(ratio "$h" "$d")" "$(hit_ratio ${HITS[$mode]})"
done
printf '%-22s %12s %14s %10s %10s\n' "aggregate (p50 ms)" "$agg_direct" "$agg_helios" \
  "$(ratio "$agg_helios" "$agg_direct")" "$(hit_ratio $((ah1 - ah0)) $((am1 - am0)))"
echo
echo "aggregate on PostgreSQL: p50 $agg_direct ms over $AGG_TX executions; through Helios the first (a miss) took $agg_helios_first ms"
echo "Helios peak RSS: $((rss / 1024)) MB; warnings/errors in its log: $problems"
if [ "$problems" != 0 ]; then
  grep -E ' (WARN|ERROR) ' "$work/helios.log" | head -n 10
fi
