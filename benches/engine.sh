#!/usr/bin/env bash
# The engine against PostgreSQL on a TPC-H-like lineitem, all in one run:
#
# - A temporary PostgreSQL with one table, lineitem (TPC-H's columns and
#   types, ROWS rows generated in SQL: arithmetic hashing of the row number,
#   so every run has the same data), VACUUMed (all-visible, frozen),
#   ANALYZEd and prewarmed into shared_buffers.
# - A Q1-style group-by aggregate (TPC-H Q1: 7 of the 16 columns, ~98% of
#   the rows pass the filter, 4 groups), each contender in its own psql
#   session, 1 warm-up execution then REPS timed ones (psql's \timing,
#   the client's wall clock), median and best:
#     direct PostgreSQL        psql -> PostgreSQL (parallel workers on)
#     Helios relay             psql -> Helios -> PostgreSQL, no hint
#     Helios federated, N=1|2  /*+ engine */ with SET helios.engine_partitions
#                              = N: DataFusion over N binary-COPY partitions
#     Helios accelerated       /*+ engine */ after CREATE HELIOS ACCELERATION
#                              ON lineitem: DataFusion over the Arrow copy
#     direct PostgreSQL again  (at the end: did the machine drift?)
#   Ratios are against the median of both direct sessions together.
#   Every execution's answer is compared with PostgreSQL's (groups, counts
#   every value byte for byte, averages included).
# - Memory: Helios's RSS (VmRSS) before CREATE HELIOS ACCELERATION, once it
#   is ready, and after the accelerated executions, against the copy's Arrow
#   size (the bytes column of SHOW HELIOS ACCELERATIONS).
#
# Exits non-zero on failures (an error, a wrong answer, a hinted statement
# that fell back to PostgreSQL, a load that failed), not on missed targets.
#
# Usage: benches/engine.sh              (ROWS=6000000 REPS=5: 900 MB in
#                                        PostgreSQL, ~2 GB of disk in TMPDIR
#                                        with the WAL; generated in ~15 s, the
#                                        whole run ~1.5 min after the build on
#                                        2 cores; Helios grows by ~1.2 GB)
#        ROWS=600000 benches/engine.sh  (a quick look, ~15 s)
#        HELIOS_BIN=path                (measure that binary instead of building)
#        TMPDIR=/dev/shm                (PostgreSQL's data directory in memory:
#                                        6M rows take ~1 GB, plus up to ~1 GB of WAL)
#        KEEP=1                         (keep the work directory and servers)
# Needs: PostgreSQL server binaries, psql, python3.
set -euo pipefail

ROWS=${ROWS:-6000000}
REPS=${REPS:-5}
# Concurrent INSERT sessions generating the table.
GEN_JOBS=${GEN_JOBS:-2}
# [engine] memory_limit (all accelerated copies together, Arrow size).
MEMORY_LIMIT=${MEMORY_LIMIT:-4GB}
# [engine] partitions: the default partition count (the accelerated load's).
PARTITIONS=${PARTITIONS:-2}
# PostgreSQL's settings (a 2-core, 24 GB box).
PG_SHARED_BUFFERS=${PG_SHARED_BUFFERS:-2GB}
PG_WORK_MEM=${PG_WORK_MEM:-64MB}
PG_PARALLEL=${PG_PARALLEL:-2}
# Seconds to wait for the accelerated copy to be ready.
LOAD_TIMEOUT=${LOAD_TIMEOUT:-900}

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

work=$(mktemp -d "${TMPDIR:-/tmp}/helios-engine-bench.XXXXXX")
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

die() { echo "error: $*" >&2; exit 1; }
secs_since() { python3 -c "import sys,time; print(f'{time.time() - float(sys.argv[1]):.1f}')" "$1"; }

# HELIOS_BIN: a Helios binary to measure instead of building one.
if [ -n "${HELIOS_BIN:-}" ]; then
  HELIOS=$HELIOS_BIN
else
  echo "== building Helios (release)"
  (cd "$here" && cargo build --release --quiet --bin helios)
  HELIOS="$CARGO_TARGET_DIR/release/helios"
fi
started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }

PG_PORT=$(free_port); HELIOS_PORT=$(free_port)

echo "== starting PostgreSQL ($("$BIN/postgres" --version)) on port $PG_PORT"
as_pg "$BIN/initdb" -D "$work/data" -A trust -U postgres >/dev/null
as_pg "$BIN/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
  -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0 -c autovacuum=off -c max_connections=100 -c shared_buffers=$PG_SHARED_BUFFERS -c work_mem=$PG_WORK_MEM -c maintenance_work_mem=512MB -c max_wal_size=1GB -c max_parallel_workers_per_gather=$PG_PARALLEL -c max_parallel_workers=8 -c max_worker_processes=16" \
  start >/dev/null

# psql on PostgreSQL directly / through Helios.
pg() { as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@" bench; }
hx() { as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$HELIOS_PORT" -U postgres "$@" bench; }

as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -c 'CREATE DATABASE bench' postgres

echo "== generating lineitem: $ROWS rows, $GEN_JOBS INSERT sessions"
gen0=$(date +%s.%N)
pg <<'EOF'
-- A deterministic "random" number >= 0 for row a, stream b.
CREATE FUNCTION h(a bigint, b int) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT abs(hashint8($1 * 8191 + $2)::bigint) $$;
-- Some text of varying length.
CREATE FUNCTION filler(a bigint, b int, len int) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT substr('furiously regular deposits sleep carefully among the final ironic '
                      'packages quickly express accounts haggle slyly pending requests '
                      'boldly even theodolites nag blithely silent pinto beans detect '
                      'fluffily bold instructions wake across the unusual dependencies',
                      1 + (h($1, $2) % 120)::int, $3) $$;
CREATE TABLE lineitem (
  l_orderkey int8 NOT NULL, l_partkey int4 NOT NULL, l_suppkey int4 NOT NULL,
  l_linenumber int4 NOT NULL, l_quantity numeric(15,2) NOT NULL,
  l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
  l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL,
  l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
  l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL);
EOF
# Rows lo..hi: 4 lines per order, TPC-H SF 1's parts and suppliers, its
# dates (orders 1992-01-01 .. 1998-08-02, shipped 1 to 121 days later) and
# its flags (returned R/A up to 1995-06-17, else N; F/O by the ship date).
gen_range() {
  pg -v lo="$1" -v hi="$2" <<'EOF'
INSERT INTO lineitem
  SELECT o, p, (1 + h(g, 13) % 10000)::int, ((g - 1) % 4 + 1)::int, q,
         q * (90000 + ((p / 10) % 20001) + 100 * (p % 1000)) / 100.0,
         (h(g, 3) % 11) / 100.0, (h(g, 4) % 9) / 100.0,
         CASE WHEN r <= date '1995-06-17' THEN (ARRAY['R', 'A'])[1 + h(g, 5) % 2] ELSE 'N' END,
         CASE WHEN s > date '1995-06-17' THEN 'O' ELSE 'F' END,
         s, od + 30 + (h(g, 6) % 61)::int, r,
         (ARRAY['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'])[1 + h(g, 7) % 4],
         (ARRAY['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'])[1 + h(g, 8) % 7],
         filler(g, 9, 10 + (h(g, 10) % 33)::int)
    FROM generate_series(:lo::bigint, :hi::bigint) g,
         LATERAL (SELECT (g - 1) / 4 + 1 AS o) oo,
         LATERAL (SELECT date '1992-01-01' + (h(o, 2) % 2406)::int AS od,
                         (1 + h(g, 1) % 200000)::int AS p, 1 + h(g, 2) % 50 AS q) v,
         LATERAL (SELECT od + 1 + (h(g, 11) % 121)::int AS s) ss,
         LATERAL (SELECT s + 1 + (h(g, 12) % 30)::int AS r) rr;
EOF
}
gen_pids=()
for j in $(seq 0 $((GEN_JOBS - 1))); do
  lo=$((ROWS * j / GEN_JOBS + 1)); hi=$((ROWS * (j + 1) / GEN_JOBS))
  gen_range "$lo" "$hi" &
  gen_pids+=($!)
done
for p in "${gen_pids[@]}"; do wait "$p" || die "generating lineitem failed"; done
pg -c 'VACUUM (FREEZE, ANALYZE) lineitem' -c 'CHECKPOINT'
pg -c 'DROP FUNCTION filler(bigint, int, int)' -c 'DROP FUNCTION h(bigint, int)'
read -r nrows rel_bytes rel_pretty < <(pg -At -F ' ' -c \
  "SELECT count(*), pg_relation_size('lineitem'), replace(pg_size_pretty(pg_relation_size('lineitem')), ' ', '') FROM lineitem")
[ "$nrows" = "$ROWS" ] || die "lineitem has $nrows rows, not $ROWS"
gen_s=$(secs_since "$gen0")
echo "   $nrows rows, $rel_pretty ($rel_bytes bytes, $((rel_bytes / 8192)) pages); took $gen_s s"

# Everything in shared_buffers (and the OS cache) for every contender.
if pg -At -c 'CREATE EXTENSION IF NOT EXISTS pg_prewarm' >/dev/null 2>&1; then
  pg -At -c "SELECT pg_prewarm('lineitem')" >/dev/null
fi

# Helios reaches PostgreSQL over its Unix socket, as a proxy on the database
# host would. The engine's statements are logged (route, rows, ms).
cat >"$work/helios.toml" <<EOF
[admin]
# Metrics on, as by default; any free port (a running Helios may hold 9930).
listen = "127.0.0.1:0"
[server]
listen = "127.0.0.1:$HELIOS_PORT"
[upstream]
url = "host=$work port=$PG_PORT user=postgres dbname=bench"
[auth]
method = "trust"
[log]
level = "warn,helios::session::engine=debug,helios::engine=info"
[engine]
memory_limit = "$MEMORY_LIMIT"
partitions = $PARTITIONS
EOF
"$HELIOS" --config "$work/helios.toml" 2>"$work/helios.log" &
pids+=($!); HELIOS_PID=$!
for i in $(seq 100); do
  if hx -c 'select 1' >/dev/null 2>&1; then break; fi
  kill -0 "$HELIOS_PID" 2>/dev/null || { cat "$work/helios.log" >&2; die "Helios exited"; }
  sleep 0.1
done
# Helios's log without its colours.
plain() { sed 's/\x1b\[[0-9;]*m//g'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$HELIOS_PID/status"; }
rss_start=$(rss_kb)

HINT='/*+ engine */ '
Q1_INTERVAL="date '1998-12-01' - interval '90 day'"
Q1_LITERAL="date '1998-09-02'"
q1() {
  echo "SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price, sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order FROM lineitem WHERE l_shipdate <= $1 GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"
}

# Does the engine plan TPC-H's own date arithmetic? (Else every contender
# runs the literal, the same date.)
FELL_BACK="the engine cannot run this statement"
Q1_DATE=$Q1_INTERVAL
if ! hx -At -c "$HINT$(q1 "$Q1_INTERVAL") LIMIT 0" >/dev/null 2>"$work/probe.err" ||
   grep -q "$FELL_BACK" "$work/probe.err"; then
  echo "   note: the engine does not run \"$Q1_INTERVAL\":"
  sed 's/^/     /' "$work/probe.err"
  echo "   every contender uses $Q1_LITERAL instead"
  Q1_DATE=$Q1_LITERAL
fi
Q1=$(q1 "$Q1_DATE")

# One contender: a psql session running PRELUDE, then Q1 (1 warm-up + REPS
# timed); its output in $work/NAME.out (rows, then "Time: ... ms" for each),
# its messages in $work/NAME.err.
contender() {
  local name=$1 port=$2 prelude=$3 sql=$4
  {
    [ -n "$prelude" ] && printf '%s\n' "$prelude"
    echo '\timing on'
    for _ in $(seq $((REPS + 1))); do printf '%s;\n' "$sql"; done
  } >"$work/$name.sql"
  local lines0; lines0=$(wc -l <"$work/helios.log")
  if ! as_pg "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -A -t -F '|' -h 127.0.0.1 -p "$port" -U postgres \
       -f "$work/$name.sql" bench >"$work/$name.out" 2>"$work/$name.err"; then
    cat "$work/$name.err" >&2
    die "$name failed"
  fi
  # The engine's log lines for this session: how each execution ran.
  tail -n +$((lines0 + 1)) "$work/helios.log" | plain >"$work/$name.log"
  python3 - "$work/$name.out" <<'PYEOF'
import re, statistics, sys
times = [float(m.group(1)) for m in re.finditer(r"^Time: ([0-9.]+) ms", open(sys.argv[1]).read(), re.M)]
t = times[1:] or times  # not the warm-up
print(f"   median {statistics.median(t):9.1f} ms  best {min(t):9.1f} ms  (warm-up {times[0]:.0f}; " + " ".join(f"{x:.0f}" for x in t) + ")")
PYEOF
}

# Every execution of NAME returned what direct PostgreSQL did.
problems=()
check_answers() {
  local name=$1
  if ! python3 - "$work/direct.out" "$work/$name.out" "$REPS" <<'PYEOF'
import sys
from decimal import Decimal
ref_path, path, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
def runs(p):
    out, cur = [], []
    for line in open(p):
        line = line.rstrip("\n")
        if line.startswith("Time: "):
            out.append(cur); cur = []
        elif "|" in line:
            cur.append(line.split("|"))
    return out
ref = runs(ref_path)[-1]
got = runs(path)
if len(got) != reps + 1:
    sys.exit(f"{len(got)} results, expected {reps + 1}")
# l_returnflag, l_linestatus, 4 sums, 3 averages, count_order
for i, rows in enumerate(got):
    if len(rows) != len(ref):
        sys.exit(f"execution {i}: {len(rows)} groups, PostgreSQL has {len(ref)}")
    for a, b in zip(rows, ref):
        # Every value as PostgreSQL prints it, averages included.
        if [v.strip() for v in a] != [v.strip() for v in b]:
            sys.exit(f"execution {i}: {a} vs PostgreSQL's {b}")
PYEOF
  then
    problems+=("$name: wrong answer (above)")
    echo "   WRONG ANSWER ($name), vs direct PostgreSQL" >&2
  fi
  if grep -q -i -E "error|warning|$FELL_BACK" "$work/$name.err"; then
    problems+=("$name: $(head -n 1 "$work/$name.err")")
    echo "   messages:" >&2; sed 's/^/     /' "$work/$name.err" >&2
  fi
}

# How the engine ran NAME's executions, from its log: "route xN ..." or
# "none" (relayed).
routes() {
  local r
  r=$(grep -o 'route="\?[a-z]*' "$work/$1.log" | tr -d '"' | sed 's/route=//' | sort | uniq -c | awk '{printf "%s%s x%d", sep, $2, $1; sep=", "}')
  declined=$(grep -c 'engine declined' "$work/$1.log" || true)
  [ "$declined" != 0 ] && r="$r; declined x$declined"
  echo "${r:-none (relayed)}"
}
expect_route() {
  local name=$1 want=$2 got
  got=$(grep -c -E "route=\"?$want\"?\$" "$work/$name.log" || true)
  echo "   engine: $(routes "$name")"
  if [ "$got" != $((REPS + 1)) ]; then
    problems+=("$name: $got of $((REPS + 1)) executions ran $want in the engine ($(routes "$name"))")
  fi
}

echo "== Q1 ($( [ "$Q1_DATE" = "$Q1_INTERVAL" ] && echo "with interval arithmetic" || echo "with $Q1_LITERAL")), 1 warm-up + $REPS timed executions per contender"
echo "   $Q1"
# The machine settles after the load (and the table is read once more).
pg -c "$Q1" >/dev/null; pg -c "$Q1" >/dev/null
echo "-- direct PostgreSQL (max_parallel_workers_per_gather = $PG_PARALLEL)"
contender direct "$PG_PORT" "" "$Q1"
echo "-- Helios relay (no hint)"
contender relay "$HELIOS_PORT" "" "$Q1"
check_answers relay
[ "$(routes relay)" = "none (relayed)" ] || problems+=("relay: ran in the engine: $(routes relay)")
for n in 1 2; do
  echo "-- Helios federated, $n partition(s)"
  contender "fed$n" "$HELIOS_PORT" "SET helios.engine_partitions = $n;" "$HINT$Q1"
  check_answers "fed$n"
  expect_route "fed$n" federated
done

echo "== CREATE HELIOS ACCELERATION ON lineitem"
rss_before=$(rss_kb)
acc0=$(date +%s.%N)
hx -c 'CREATE HELIOS ACCELERATION ON lineitem'
acc_state=""
while :; do
  row=$(hx -At -F $'\t' -c 'SHOW HELIOS ACCELERATIONS' | awk -F'\t' '$1 == "public.lineitem"')
  acc_state=$(awk -F'\t' '{print $3}' <<<"$row")
  case $acc_state in
    ready) break ;;
    failed*) die "loading the accelerated copy: $acc_state" ;;
  esac
  kill -0 "$HELIOS_PID" 2>/dev/null || { tail -n 20 "$work/helios.log" >&2; die "Helios exited while loading"; }
  [ "$(python3 -c "import sys,time; print(int(time.time() - float(sys.argv[1]) > $LOAD_TIMEOUT))" "$acc0")" = 1 ] &&
    die "the accelerated copy is still \"$acc_state\" after $LOAD_TIMEOUT s"
  sleep 0.2
done
acc_wall=$(secs_since "$acc0")
# table, database, state, rows, bytes, partitions, refresh, last_refresh, load_ms, staleness_s
read -r acc_rows acc_bytes acc_parts acc_load_ms < <(awk -F'\t' '{print $4, $5, $6, $9}' <<<"$row")
sleep 1
rss_ready=$(rss_kb)
echo "   ready after $acc_wall s (load_ms $acc_load_ms, $acc_parts partitions): $acc_rows rows, $acc_bytes bytes Arrow"
[ "$acc_rows" = "$ROWS" ] || problems+=("accelerated copy: $acc_rows rows, the table has $ROWS")

echo "-- Helios accelerated"
contender accel "$HELIOS_PORT" "" "$HINT$Q1"
check_answers accel
expect_route accel accelerated
rss_after=$(rss_kb)
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$HELIOS_PID/status")

echo "-- direct PostgreSQL again (drift check)"
contender direct2 "$PG_PORT" "" "$Q1"
check_answers direct2

log_problems=$(plain <"$work/helios.log" | grep -c -E ' (WARN|ERROR) ' || true)
kill -0 "$HELIOS_PID" 2>/dev/null || problems+=("Helios is no longer running")

echo
python3 - "$work" "$REPS" "$ROWS" "$rel_bytes" "$acc_bytes" "$acc_load_ms" "$acc_wall" \
  "$rss_start" "$rss_before" "$rss_ready" "$rss_after" "$hwm" "$acc_parts" <<'PYEOF'
import re, statistics, sys
work, reps, rows, rel, arrow, load_ms, acc_wall, rss_start, rss_before, rss_ready, rss_after, hwm, parts = sys.argv[1:]
rows, rel, arrow = int(rows), int(rel), int(arrow)
kb = lambda v: int(v) * 1024
def times(name):
    t = [float(x) for x in re.findall(r"^Time: ([0-9.]+) ms", open(f"{work}/{name}.out").read(), re.M)]
    return t[1:]
names = [("direct", "direct PostgreSQL"), ("relay", "Helios relay"),
         ("fed1", "Helios federated, 1 part."), ("fed2", "Helios federated, 2 part."),
         ("accel", "Helios accelerated"), ("direct2", "direct PostgreSQL again")]
med = {n: statistics.median(times(n)) for n, _ in names}
best = {n: min(times(n)) for n, _ in names}
# The baseline: direct PostgreSQL's executions at the start and at the end.
base = statistics.median(times("direct") + times("direct2"))
mb = lambda b: f"{b / 1048576:.0f} MB"
print(f"lineitem: {rows:,} rows, {mb(rel)} in PostgreSQL; Q1, {reps} timed executions each (after 1 warm-up)")
print(f"{'contender':28} {'median ms':>10} {'best ms':>10} {'÷ direct':>9} {'direct ÷':>9}")
for n, label in names:
    print(f"{label:28} {med[n]:10.1f} {best[n]:10.1f} {med[n] / base:9.2f} {base / med[n]:9.2f}")
print(f"(÷ direct: median over direct PostgreSQL's median, {base:.1f} ms, of both its sessions; direct ÷: the speedup)")
print()
ok = lambda c: "met" if c else "MISSED"
sp = med["fed1"] / med["fed2"]
acc = base / med["accel"]
fed = med["fed2"] / base
d_ready = kb(rss_ready) - kb(rss_before)
d_after = kb(rss_after) - kb(rss_before)
ratio = max(d_ready, d_after) / arrow
print(f"federated speedup, 1 -> 2 partitions:        {sp:.2f}x  ({med['fed1']:.1f} -> {med['fed2']:.1f} ms)")
print(f"accelerated vs direct PostgreSQL:            {acc:.2f}x faster  (target >= 5x: {ok(acc >= 5)})")
print(f"federated (2 partitions) / direct:           {fed:.2f}  (target <= 1.5: {ok(fed <= 1.5)})")
print(f"accelerated memory: RSS +{mb(d_ready)} when ready, +{mb(d_after)} after the queries; Arrow {mb(arrow)} ({arrow:,} bytes)")
print(f"  memory ratio (RSS delta / Arrow):          {ratio:.3f}  (target <= 1.2: {ok(ratio <= 1.2)})")
print(f"  Arrow / PostgreSQL table size:             {arrow / rel:.2f}")
print(f"  load: {float(load_ms) / 1000:.1f} s ({parts} partitions; {acc_wall} s until SHOW said ready)")
print(f"  Helios RSS: {mb(kb(rss_start))} at start, {mb(kb(rss_before))} before CREATE, {mb(kb(rss_ready))} ready, "
      f"{mb(kb(rss_after))} after the queries; peak {mb(kb(hwm))}")
PYEOF
echo "whole run $(elapsed) (after the build); load average $(cut -d' ' -f1-3 /proc/loadavg); warnings/errors in Helios's log: $log_problems"
if [ "$log_problems" != 0 ]; then
  plain <"$work/helios.log" | grep -E ' (WARN|ERROR) ' | head -n 10
fi
if [ ${#problems[@]} != 0 ]; then
  echo
  echo "FAILURES:"
  printf '  %s\n' "${problems[@]}"
  exit 1
fi
