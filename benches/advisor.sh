#!/usr/bin/env bash
# The index advisor against a TPC-H-like workload, checked on the real
# PostgreSQL:
#
# - A temporary PostgreSQL with a TPC-H-like schema generated in SQL
#   (deterministic: arithmetic hashing of the row numbers), primary keys
#   only, ANALYZEd; HypoPG created when it is installed (HYPOPG=0: not).
# - 19 TPC-H-style statement shapes (point lookups by non-key columns,
#   date ranges, joins, Q1/Q3/Q4/Q5/Q10-style aggregates, top-N), each run
#   `calls` times through Helios with varying literals, so Helios's query log
#   holds them; then ADVISE WORKLOAD through Helios.
# - On PostgreSQL directly, the weighted workload (every call's own text):
#   Σ EXPLAIN total cost and Σ EXPLAIN ANALYZE time (planning + execution)
#   with (a) no secondary index, (b) a naive set — a single-column B-tree on
#   every column named in a WHERE filter or join condition of the query set,
#   except those an existing index (a primary key) already leads with —
#   and (c) the indexes ADVISE WORKLOAD recommended, all built for real;
#   the size of (b) and (c).
#
# Usage: benches/advisor.sh          (SF=0.25: 1.5M lineitem, 375k orders,
#                                     37.5k customers, 50k parts, ~370 MB;
#                                     generation ~30 s on 2 cores, the whole
#                                     run ~3.5 min after the build)
#        SF=0.05 benches/advisor.sh  (a quick look)
#        HYPOPG=0 benches/advisor.sh (no HypoPG: Helios's pg_stats model)
#        HELIOS_BIN=path             (measure that binary instead of building)
#        KEEP=1                      (keep the work directory and servers)
# Needs: PostgreSQL server binaries, psql, python3; HypoPG for the planner-
# verified path (postgresql-NN-hypopg).
set -euo pipefail

SF=${SF:-0.25}
HYPOPG=${HYPOPG:-1}
# Weights (calls per shape) are multiplied by this (at least 1 call each).
CALLS_SCALE=${CALLS_SCALE:-1}

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

work=$(mktemp -d /tmp/helios-advisor-bench.XXXXXX)
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

started=$(date +%s)
elapsed() { echo "$(( $(date +%s) - started )) s"; }

# HELIOS_BIN: a Helios binary to measure instead of building one.
if [ -n "${HELIOS_BIN:-}" ]; then
  HELIOS=$HELIOS_BIN
else
  echo "== building Helios (release)"
  (cd "$here" && cargo build --release --quiet -p helios --bin helios)
  HELIOS="$CARGO_TARGET_DIR/release/helios"
fi
started=$(date +%s)

PG_PORT=$(free_port); HELIOS_PORT=$(free_port)

echo "== starting PostgreSQL ($("$BIN/postgres" --version)) on port $PG_PORT"
as_pg "$BIN/initdb" -D "$work/data" -A trust -U postgres >/dev/null
as_pg "$BIN/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
  -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c wal_level=minimal -c max_wal_senders=0 -c shared_buffers=512MB -c maintenance_work_mem=256MB -c work_mem=16MB -c autovacuum=off" \
  start >/dev/null

# psql on PostgreSQL directly / through Helios.
pg() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@" postgres; }
hx() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$HELIOS_PORT" -U postgres "$@" postgres; }

method=statistics
if [ "$HYPOPG" != 0 ]; then
  if [ "$(pg -At -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'hypopg'")" = 1 ]; then
    pg -c 'CREATE EXTENSION hypopg'
    method=hypopg
  else
    echo "   HypoPG is not installed: Helios will use its pg_stats model"
  fi
fi

# Row counts at this scale (TPC-H's per SF, at least 1).
read -r NSUPP NCUST NPART NORD < <(python3 -c "
sf=float('$SF'); n=lambda k: max(1, int(k*sf))
print(n(10000), n(150000), n(200000), n(1500000))")

echo "== generating TPC-H-like data, SF $SF ($NORD orders, ~$((NORD * 4)) lineitem, $NCUST customers, $NPART parts, $NSUPP suppliers)"
gen0=$(date +%s)
pg -v nsupp="$NSUPP" -v ncust="$NCUST" -v npart="$NPART" -v nord="$NORD" <<'EOF'
-- A deterministic "random" number >= 0 for row a, stream b.
CREATE FUNCTION h(a bigint, b int) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT abs(hashint8($1 * 8191 + $2)::bigint) $$;
-- Some text of varying length (comments, addresses).
CREATE FUNCTION filler(a bigint, b int, len int) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS $$ SELECT substr('furiously regular deposits sleep carefully among the final ironic '
                      'packages quickly express accounts haggle slyly pending requests '
                      'boldly even theodolites nag blithely silent pinto beans detect '
                      'fluffily bold instructions wake across the unusual dependencies',
                      1 + (h($1, $2) % 120)::int, $3) $$;

BEGIN;
CREATE TABLE region (
  r_regionkey int NOT NULL, r_name char(25) NOT NULL, r_comment varchar(152));
INSERT INTO region
  SELECT i - 1, n, filler(i, 1, 60)
    FROM unnest(ARRAY['AFRICA', 'AMERICA', 'ASIA', 'EUROPE', 'MIDDLE EAST']) WITH ORDINALITY AS t(n, i);

CREATE TABLE nation (
  n_nationkey int NOT NULL, n_name char(25) NOT NULL, n_regionkey int NOT NULL,
  n_comment varchar(152));
INSERT INTO nation
  SELECT i - 1, n, r, filler(i, 1, 60)
    FROM unnest(ARRAY['ALGERIA', 'ARGENTINA', 'BRAZIL', 'CANADA', 'EGYPT', 'ETHIOPIA',
                      'FRANCE', 'GERMANY', 'INDIA', 'INDONESIA', 'IRAN', 'IRAQ', 'JAPAN',
                      'JORDAN', 'KENYA', 'MOROCCO', 'MOZAMBIQUE', 'PERU', 'CHINA',
                      'ROMANIA', 'SAUDI ARABIA', 'VIETNAM', 'RUSSIA', 'UNITED KINGDOM',
                      'UNITED STATES'],
                ARRAY[0, 1, 1, 1, 4, 0, 3, 3, 2, 2, 4, 4, 2, 4, 0, 0, 0, 1, 2, 3, 4, 2, 3, 3, 1])
         WITH ORDINALITY AS t(n, r, i);

CREATE TABLE supplier (
  s_suppkey int NOT NULL, s_name char(25) NOT NULL, s_address varchar(40) NOT NULL,
  s_nationkey int NOT NULL, s_phone char(15) NOT NULL, s_acctbal numeric(15,2) NOT NULL,
  s_comment varchar(101) NOT NULL);
INSERT INTO supplier
  SELECT g, 'Supplier#' || lpad(g::text, 9, '0'), filler(g, 2, 10 + (h(g, 3) % 25)::int),
         nk, (10 + nk) || '-' || (100 + h(g, 4) % 900) || '-' || (100 + h(g, 5) % 900)
             || '-' || (1000 + h(g, 6) % 9000),
         (h(g, 7) % 1099998) / 100.0 - 999.99, filler(g, 8, 25 + (h(g, 9) % 60)::int)
    FROM generate_series(1, :nsupp) g, LATERAL (SELECT (h(g, 1) % 25)::int AS nk) n;

CREATE TABLE customer (
  c_custkey int NOT NULL, c_name varchar(25) NOT NULL, c_address varchar(40) NOT NULL,
  c_nationkey int NOT NULL, c_phone char(15) NOT NULL, c_acctbal numeric(15,2) NOT NULL,
  c_mktsegment char(10) NOT NULL, c_comment varchar(117) NOT NULL);
INSERT INTO customer
  SELECT g, 'Customer#' || lpad(g::text, 9, '0'), filler(g, 2, 10 + (h(g, 3) % 25)::int),
         nk, (10 + nk) || '-' || (100 + h(g, 4) % 900) || '-' || (100 + h(g, 5) % 900)
             || '-' || (1000 + h(g, 6) % 9000),
         (h(g, 7) % 1099998) / 100.0 - 999.99,
         (ARRAY['AUTOMOBILE', 'BUILDING', 'FURNITURE', 'HOUSEHOLD', 'MACHINERY'])[1 + h(g, 8) % 5],
         filler(g, 9, 30 + (h(g, 10) % 80)::int)
    FROM generate_series(1, :ncust) g, LATERAL (SELECT (h(g, 1) % 25)::int AS nk) n;

CREATE TABLE part (
  p_partkey int NOT NULL, p_name varchar(55) NOT NULL, p_mfgr char(25) NOT NULL,
  p_brand char(10) NOT NULL, p_type varchar(25) NOT NULL, p_size int NOT NULL,
  p_container char(10) NOT NULL, p_retailprice numeric(15,2) NOT NULL,
  p_comment varchar(23) NOT NULL);
INSERT INTO part
  SELECT g, c[1 + h(g, 1) % 30] || ' ' || c[1 + h(g, 2) % 30] || ' ' || c[1 + h(g, 3) % 30]
              || ' ' || c[1 + h(g, 4) % 30] || ' ' || c[1 + h(g, 5) % 30],
         'Manufacturer#' || m, 'Brand#' || m || (1 + h(g, 7) % 5),
         (ARRAY['STANDARD', 'SMALL', 'MEDIUM', 'LARGE', 'ECONOMY', 'PROMO'])[1 + h(g, 8) % 6] || ' '
           || (ARRAY['ANODIZED', 'BURNISHED', 'PLATED', 'POLISHED', 'BRUSHED'])[1 + h(g, 9) % 5] || ' '
           || (ARRAY['TIN', 'NICKEL', 'BRASS', 'STEEL', 'COPPER'])[1 + h(g, 10) % 5],
         1 + h(g, 11) % 50,
         (ARRAY['SM', 'LG', 'MED', 'JUMBO', 'WRAP'])[1 + h(g, 12) % 5] || ' '
           || (ARRAY['CASE', 'BOX', 'BAG', 'JAR', 'PKG', 'PACK', 'CAN', 'DRUM'])[1 + h(g, 13) % 8],
         (90000 + ((g / 10) % 20001) + 100 * (g % 1000)) / 100.0,
         filler(g, 14, 5 + (h(g, 15) % 18)::int)
    FROM generate_series(1, :npart) g,
         LATERAL (SELECT 1 + h(g, 6) % 5 AS m) mm,
         (SELECT ARRAY['almond', 'antique', 'aquamarine', 'azure', 'beige', 'bisque', 'black',
                       'blanched', 'blue', 'blush', 'brown', 'burlywood', 'burnished',
                       'chartreuse', 'chiffon', 'chocolate', 'coral', 'cornflower', 'cornsilk',
                       'cream', 'cyan', 'dark', 'deep', 'dim', 'dodger', 'drab', 'firebrick',
                       'floral', 'forest', 'frosted'] AS c) colors;

-- Four suppliers per part (TPC-H's formula).
CREATE TABLE partsupp (
  ps_partkey int NOT NULL, ps_suppkey int NOT NULL, ps_availqty int NOT NULL,
  ps_supplycost numeric(15,2) NOT NULL, ps_comment varchar(199) NOT NULL);
INSERT INTO partsupp
  SELECT p, (p + i * (:nsupp / 4 + (p - 1) / :nsupp)) % :nsupp + 1,
         1 + h(p * 4 + i, 1) % 9999, (100 + h(p * 4 + i, 2) % 99901) / 100.0,
         filler(p * 4 + i, 3, 40 + (h(p * 4 + i, 4) % 120)::int)
    FROM generate_series(1, :npart) p, generate_series(0, 3) i;

CREATE TABLE orders (
  o_orderkey int NOT NULL, o_custkey int NOT NULL, o_orderstatus char(1) NOT NULL,
  o_totalprice numeric(15,2) NOT NULL, o_orderdate date NOT NULL,
  o_orderpriority char(15) NOT NULL, o_clerk char(15) NOT NULL, o_shippriority int NOT NULL,
  o_comment varchar(79) NOT NULL);
INSERT INTO orders
  SELECT g, 1 + h(g, 1) % :ncust,
         CASE WHEN d + 121 < date '1995-06-17' THEN 'F'
              WHEN d > date '1995-06-17' THEN 'O' ELSE 'P' END,
         (100000 + h(g, 3) % 50000000) / 100.0, d,
         (ARRAY['1-URGENT', '2-HIGH', '3-MEDIUM', '4-NOT SPECIFIED', '5-LOW'])[1 + h(g, 4) % 5],
         'Clerk#' || lpad((1 + h(g, 5) % greatest(1, :nord / 1500))::text, 9, '0'), 0,
         filler(g, 6, 19 + (h(g, 7) % 60)::int)
    FROM generate_series(1, :nord) g,
         LATERAL (SELECT date '1992-01-01' + (h(g, 2) % 2406)::int AS d) dd;

-- 1 to 7 lines per order.
CREATE TABLE lineitem (
  l_orderkey int NOT NULL, l_partkey int NOT NULL, l_suppkey int NOT NULL,
  l_linenumber int NOT NULL, l_quantity numeric(15,2) NOT NULL,
  l_extendedprice numeric(15,2) NOT NULL, l_discount numeric(15,2) NOT NULL,
  l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL, l_linestatus char(1) NOT NULL,
  l_shipdate date NOT NULL, l_commitdate date NOT NULL, l_receiptdate date NOT NULL,
  l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL, l_comment varchar(44) NOT NULL);
INSERT INTO lineitem
  SELECT o_orderkey, p, (p + (k % 4) * (:nsupp / 4 + (p - 1) / :nsupp)) % :nsupp + 1, ln, q,
         q * (90000 + ((p / 10) % 20001) + 100 * (p % 1000)) / 100.0,
         (h(k, 3) % 11) / 100.0, (h(k, 4) % 9) / 100.0,
         CASE WHEN r <= date '1995-06-17' THEN (ARRAY['R', 'A'])[1 + h(k, 5) % 2] ELSE 'N' END,
         CASE WHEN s > date '1995-06-17' THEN 'O' ELSE 'F' END,
         s, o_orderdate + 30 + (h(k, 6) % 61)::int, r,
         (ARRAY['DELIVER IN PERSON', 'COLLECT COD', 'NONE', 'TAKE BACK RETURN'])[1 + h(k, 7) % 4],
         (ARRAY['REG AIR', 'AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL', 'FOB'])[1 + h(k, 8) % 7],
         filler(k, 9, 10 + (h(k, 10) % 33)::int)
    FROM orders,
         generate_series(1, 1 + (h(o_orderkey, 99) % 7)::int) ln,
         LATERAL (SELECT o_orderkey::bigint * 8 + ln AS k) kk,
         LATERAL (SELECT (1 + h(k, 1) % :npart)::int AS p, 1 + h(k, 2) % 50 AS q,
                         o_orderdate + 1 + (h(k, 11) % 121)::int AS s) v,
         LATERAL (SELECT s + 1 + (h(k, 12) % 30)::int AS r) rr;
COMMIT;

ALTER TABLE region ADD PRIMARY KEY (r_regionkey);
ALTER TABLE nation ADD PRIMARY KEY (n_nationkey);
ALTER TABLE supplier ADD PRIMARY KEY (s_suppkey);
ALTER TABLE customer ADD PRIMARY KEY (c_custkey);
ALTER TABLE part ADD PRIMARY KEY (p_partkey);
ALTER TABLE partsupp ADD PRIMARY KEY (ps_partkey, ps_suppkey);
ALTER TABLE orders ADD PRIMARY KEY (o_orderkey);
ALTER TABLE lineitem ADD PRIMARY KEY (l_orderkey, l_linenumber);
DROP FUNCTION filler(bigint, int, int);
DROP FUNCTION h(bigint, int);
VACUUM ANALYZE;
EOF
lineitems=$(pg -At -c 'SELECT count(*) FROM lineitem')
echo "   $lineitems lineitem rows; $(pg -At -c "SELECT pg_size_pretty(pg_database_size(current_database()))") in all; took $(( $(date +%s) - gen0 )) s"

# Phones and names of some customers, for the point lookups.
pg -At -F $'\t' -c "SELECT c_custkey, c_phone FROM customer ORDER BY c_custkey % 97, c_custkey LIMIT 500" >"$work/phones.tsv"

# The query set: per shape an id, a weight (calls) and a template; each
# call's literals drawn from a seeded generator. Writes
#   workload.tsv   shape <TAB> sql          one line per call, in run order
#   shapes.tsv     shape <TAB> calls <TAB> what
python3 - "$work" "$NSUPP" "$NCUST" "$NPART" "$NORD" "$CALLS_SCALE" <<'PYEOF'
import datetime, random, sys
work, nsupp, ncust, npart, nord, scale = sys.argv[1], *map(int, sys.argv[2:6]), float(sys.argv[6])
rnd = random.Random(42)
phones = [l.rstrip("\n").split("\t")[1] for l in open(f"{work}/phones.tsv")]

def day(lo, hi):
    a, b = datetime.date.fromisoformat(lo), datetime.date.fromisoformat(hi)
    return (a + datetime.timedelta(days=rnd.randrange((b - a).days + 1))).isoformat()

SEGMENTS = ["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"]
REGIONS = ["AFRICA", "AMERICA", "ASIA", "EUROPE", "MIDDLE EAST"]
CONTAINERS = [f"{a} {b}" for a in ["SM", "LG", "MED", "JUMBO", "WRAP"]
              for b in ["CASE", "BOX", "BAG", "JAR", "PKG", "PACK", "CAN", "DRUM"]]

# (shape, calls, what, template)
SHAPES = [
    ("q01", 200, "orders of a customer, newest first",
     lambda: f"SELECT o_orderkey, o_orderdate, o_orderstatus, o_totalprice FROM orders "
             f"WHERE o_custkey = {rnd.randint(1, ncust)} ORDER BY o_orderdate DESC"),
    ("q02", 150, "lines of a part",
     lambda: f"SELECT l_orderkey, l_suppkey, l_quantity, l_extendedprice, l_shipdate FROM lineitem "
             f"WHERE l_partkey = {rnd.randint(1, npart)}"),
    ("q03", 100, "customer by phone",
     lambda: f"SELECT c_custkey, c_name, c_acctbal FROM customer WHERE c_phone = '{rnd.choice(phones)}'"),
    ("q04", 100, "customer by name",
     lambda: f"SELECT c_custkey, c_address, c_phone, c_acctbal FROM customer "
             f"WHERE c_name = 'Customer#{rnd.randint(1, ncust):09d}'"),
    ("q05", 40, "orders of one week",
     lambda: (lambda d: f"SELECT count(*), sum(o_totalprice) FROM orders "
                        f"WHERE o_orderdate >= date '{d}' AND o_orderdate < date '{d}' + 7")(day("1992-01-01", "1998-07-01"))),
    ("q06", 30, "Q6, three days of shipments",
     lambda: (lambda d: f"SELECT sum(l_extendedprice * l_discount) AS revenue FROM lineitem "
                        f"WHERE l_shipdate >= date '{d}' AND l_shipdate < date '{d}' + 3 "
                        f"AND l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24")(day("1992-02-01", "1998-10-01"))),
    ("q07", 3, "Q1, pricing summary",
     lambda: f"SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, "
             f"sum(l_extendedprice) AS sum_base_price, "
             f"sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, "
             f"sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, "
             f"avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, "
             f"avg(l_discount) AS avg_disc, count(*) AS count_order FROM lineitem "
             f"WHERE l_shipdate <= date '1998-12-01' - interval '{rnd.randint(60, 120)} day' "
             f"GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus"),
    ("q08", 10, "Q3, shipping priority",
     lambda: (lambda d: f"SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, "
                        f"o_orderdate, o_shippriority FROM customer, orders, lineitem "
                        f"WHERE c_mktsegment = '{rnd.choice(SEGMENTS)}' AND c_custkey = o_custkey "
                        f"AND l_orderkey = o_orderkey AND o_orderdate < date '{d}' "
                        f"AND l_shipdate > date '{d}' GROUP BY l_orderkey, o_orderdate, o_shippriority "
                        f"ORDER BY revenue DESC, o_orderdate LIMIT 10")(day("1995-03-01", "1995-03-31"))),
    ("q09", 3, "Q5, local supplier volume",
     lambda: (lambda y: f"SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue "
                        f"FROM customer, orders, lineitem, supplier, nation, region "
                        f"WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey "
                        f"AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey "
                        f"AND n_regionkey = r_regionkey AND r_name = '{rnd.choice(REGIONS)}' "
                        f"AND o_orderdate >= date '{y}-01-01' "
                        f"AND o_orderdate < date '{y}-01-01' + interval '1 year' "
                        f"GROUP BY n_name ORDER BY revenue DESC")(rnd.randint(1993, 1997))),
    ("q10", 5, "Q10, returned items",
     lambda: (lambda d: f"SELECT c_custkey, c_name, sum(l_extendedprice * (1 - l_discount)) AS revenue, "
                        f"c_acctbal, n_name FROM customer, orders, lineitem, nation "
                        f"WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey "
                        f"AND o_orderdate >= date '{d}' AND o_orderdate < date '{d}' + interval '3 month' "
                        f"AND l_returnflag = 'R' AND c_nationkey = n_nationkey "
                        f"GROUP BY c_custkey, c_name, c_acctbal, n_name ORDER BY revenue DESC LIMIT 20")(
                 day("1993-01-01", "1994-12-01")[:8] + "01")),
    ("q11", 20, "top 10 orders by price",
     lambda: "SELECT o_orderkey, o_custkey, o_totalprice FROM orders ORDER BY o_totalprice DESC LIMIT 10"),
    ("q12", 60, "cheapest parts of a supplier",
     lambda: f"SELECT ps_partkey, ps_availqty, ps_supplycost FROM partsupp "
             f"WHERE ps_suppkey = {rnd.randint(1, nsupp)} ORDER BY ps_supplycost LIMIT 10"),
    ("q13", 200, "lines of an order (primary key)",
     lambda: f"SELECT l_linenumber, l_partkey, l_quantity, l_extendedprice FROM lineitem "
             f"WHERE l_orderkey = {rnd.randint(1, nord)}"),
    ("q14", 40, "parts by brand, container and sizes",
     lambda: (lambda s: f"SELECT p_partkey, p_name, p_retailprice FROM part "
                        f"WHERE p_brand = 'Brand#{rnd.randint(1, 5)}{rnd.randint(1, 5)}' "
                        f"AND p_container = '{rnd.choice(CONTAINERS)}' "
                        f"AND p_size BETWEEN {s} AND {s + 9}")(rnd.randint(1, 41))),
    ("q15", 40, "late lines of a supplier",
     lambda: f"SELECT count(*) FROM lineitem WHERE l_suppkey = {rnd.randint(1, nsupp)} "
             f"AND l_receiptdate > l_commitdate"),
    ("q16", 20, "a month of orders from one nation",
     lambda: (lambda d: f"SELECT o_orderkey, o_orderdate, o_totalprice, c_name FROM orders "
                        f"JOIN customer ON c_custkey = o_custkey WHERE c_nationkey = {rnd.randint(0, 24)} "
                        f"AND o_orderdate >= date '{d}' AND o_orderdate < date '{d}' + 30")(day("1992-01-01", "1998-07-01"))),
    ("q17", 5, "Q4, order priority checking",
     lambda: (lambda d: f"SELECT o_orderpriority, count(*) AS order_count FROM orders "
                        f"WHERE o_orderdate >= date '{d}' AND o_orderdate < date '{d}' + interval '3 month' "
                        f"AND EXISTS (SELECT * FROM lineitem WHERE l_orderkey = o_orderkey "
                        f"AND l_commitdate < l_receiptdate) GROUP BY o_orderpriority ORDER BY o_orderpriority")(
                 day("1993-01-01", "1997-10-01")[:8] + "01")),
    ("q18", 20, "richest customers of a segment",
     lambda: f"SELECT c_custkey, c_name, c_acctbal FROM customer "
             f"WHERE c_mktsegment = '{rnd.choice(SEGMENTS)}' ORDER BY c_acctbal DESC LIMIT 20"),
    ("q19", 10, "richest suppliers, with their nation",
     lambda: f"SELECT s_suppkey, s_name, s_acctbal, n_name FROM supplier "
             f"JOIN nation ON n_nationkey = s_nationkey WHERE s_acctbal > {rnd.randint(0, 9000)} "
             f"ORDER BY s_acctbal DESC LIMIT 10"),
]

calls = []
with open(f"{work}/shapes.tsv", "w") as f:
    for shape, weight, what, make in SHAPES:
        n = max(1, round(weight * scale))
        f.write(f"{shape}\t{n}\t{what}\n")
        calls += [(shape, make()) for _ in range(n)]
rnd.shuffle(calls)
with open(f"{work}/workload.tsv", "w") as f:
    for shape, sql in calls:
        assert "\t" not in sql and "\n" not in sql
        f.write(f"{shape}\t{sql}\n")
PYEOF
cut -f2 "$work/workload.tsv" | sed 's/$/;/' >"$work/workload.sql"
nshapes=$(wc -l <"$work/shapes.tsv"); ncalls=$(wc -l <"$work/workload.tsv")

# Every shape must return rows somewhere (or the workload tells nothing).
awk -F'\t' '!seen[$1]++ { print "\\echo @" $1; print $2 ";" }' "$work/workload.tsv" >"$work/firsts.sql"
pg -At -f "$work/firsts.sql" >"$work/firsts.out"
awk '/^@/ { if (s != "" && n == 0) print s; s = substr($0, 2); n = 0; next } { n++ }
     END { if (s != "" && n == 0) print s }' "$work/firsts.out" >"$work/empty.txt"
if [ -s "$work/empty.txt" ]; then
  echo "   note: the first call of $(tr '\n' ' ' <"$work/empty.txt")returned no rows"
fi

# Helios: no result cache (every call reaches PostgreSQL), the advisor on.
cat >"$work/helios.toml" <<EOF
[admin]
# Metrics on, as by default; any free port (a running Helios may hold 9930).
listen = "127.0.0.1:0"
[server]
listen = "127.0.0.1:$HELIOS_PORT"
[upstream]
url = "host=$work port=$PG_PORT user=postgres"
[log]
level = "warn"
[cache]
mode = "off"
[advisor]
enabled = true
EOF
"$HELIOS" --config "$work/helios.toml" 2>"$work/helios.log" &
pids+=($!); HELIOS_PID=$!
for i in $(seq 100); do
  if hx -c 'SHOW helios.advise' >/dev/null 2>&1; then break; fi
  sleep 0.1
done

echo "== running the workload through Helios: $nshapes shapes, $ncalls calls"
t0=$(date +%s.%N)
hx -f "$work/workload.sql" >/dev/null
t1=$(date +%s.%N)
echo "   took $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
echo "== SHOW HELIOS QUERIES (top 5 by total time)"
hx -At -F $'\t' -c 'SHOW HELIOS QUERIES' >"$work/queries.tsv"
awk -F'\t' 'NR <= 5 { printf "   %6d calls %10.1f ms  %s\n", $3, $4, substr($2, 1, 90) }' "$work/queries.tsv"

echo "== ADVISE WORKLOAD (method: $method)"
t0=$(date +%s.%N)
hx -At -F $'\t' -c 'ADVISE WORKLOAD' >"$work/advice.tsv"
t1=$(date +%s.%N)
advise_s=$(python3 -c "print(f'{$t1 - $t0:.1f}')")
awk -F'\t' '{ printf "   %-38s before %12.0f after %12.0f  %5.1f%%  %8.1f MB  %s\n", $1, $3, $4, $5, $6 / 1048576, ($2 != "" ? $2 : $7) }' "$work/advice.tsv"
echo "   took $advise_s s"
grep -v '^(workload)' "$work/advice.tsv" | cut -f2 >"$work/helios-ddl.sql" || true
read -r h_before h_after h_saving h_bytes < <(awk -F'\t' '$1 == "(workload)" { print $3, $4, $5, $6 }' "$work/advice.tsv")

# The naive set: a single-column B-tree on every column in a WHERE filter or
# join condition of the query set (read off the templates above), but not
# one a primary key already leads with (l_orderkey, o_orderkey, c_custkey,
# s_suppkey, n_nationkey, r_regionkey).
NAIVE="orders(o_custkey) orders(o_orderdate)
lineitem(l_partkey) lineitem(l_suppkey) lineitem(l_shipdate) lineitem(l_discount)
lineitem(l_quantity) lineitem(l_returnflag) lineitem(l_commitdate) lineitem(l_receiptdate)
customer(c_phone) customer(c_name) customer(c_mktsegment) customer(c_nationkey)
part(p_brand) part(p_container) part(p_size) partsupp(ps_suppkey)
supplier(s_nationkey) supplier(s_acctbal) nation(n_regionkey) region(r_name)"
for ix in $NAIVE; do echo "CREATE INDEX ON $ix;"; done >"$work/naive-ddl.sql"

drop_indexes() {
  pg -At <<'EOF' >/dev/null
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT i.indexrelid::regclass AS ix FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisprimary LOOP
    EXECUTE 'DROP INDEX ' || r.ix;
  END LOOP; END $$;
EOF
}
index_bytes() {
  pg -At -c "SELECT coalesce(sum(pg_relation_size(i.indexrelid)), 0) FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
              WHERE c.relnamespace = 'public'::regnamespace AND NOT i.indisprimary"
}

# Per-call plan cost and time, on PostgreSQL directly: `shape cost ms` lines.
awk -F'\t' '{ print "\\echo @" $1; print "EXPLAIN " $2 ";" }' "$work/workload.tsv" >"$work/explain.sql"
awk -F'\t' '{ print "\\echo @" $1; print "EXPLAIN (ANALYZE, TIMING OFF) " $2 ";" }' "$work/workload.tsv" >"$work/analyze.sql"
measure() {
  local conf=$1
  pg -At -f "$work/explain.sql" |
    awk '/^@/ { s = substr($0, 2); next }
         s != "" && match($0, /cost=[0-9.]+\.\.[0-9.]+/) {
           c = substr($0, RSTART, RLENGTH); sub(/.*\.\./, "", c); cost[s] += c; n[s]++; s = "" }
         END { for (k in cost) print k, n[k], cost[k] }' | sort >"$work/cost-$conf.txt"
  local t0 t1
  t0=$(date +%s.%N)
  pg -At -f "$work/analyze.sql" |
    awk '/^@/ { s = substr($0, 2); next }
         /^(Planning|Execution) Time:/ { ms[s] += $3 }
         END { for (k in ms) print k, ms[k] }' | sort >"$work/time-$conf.txt"
  t1=$(date +%s.%N)
  echo "   $conf: Σ cost $(awk '{ s += $3 } END { printf "%.0f", s }' "$work/cost-$conf.txt"), Σ time $(awk '{ s += $2 } END { printf "%.1f", s / 1000 }' "$work/time-$conf.txt") s (measured in $(python3 -c "print(f'{$t1 - $t0:.0f}')") s)"
}
build() {
  local conf=$1 t0 t1
  t0=$(date +%s.%N)
  while IFS= read -r ddl; do
    [ -n "$ddl" ] && pg -c "$ddl"
  done <"$work/$conf-ddl.sql"
  t1=$(date +%s.%N)
  echo "   $conf: $(grep -c . "$work/$conf-ddl.sql" || true) indexes built in $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
}

echo "== verifying on PostgreSQL directly ($ncalls calls: Σ EXPLAIN cost, Σ EXPLAIN ANALYZE time)"
drop_indexes
measure none
build naive
naive_bytes=$(index_bytes)
measure naive
drop_indexes
build helios
helios_bytes=$(index_bytes)
measure helios
drop_indexes

echo
echo "per shape: calls, Σ plan cost, Σ time (ms)"
python3 - "$work" <<'PYEOF'
import sys
work = sys.argv[1]
shapes = [l.rstrip("\n").split("\t") for l in open(f"{work}/shapes.tsv")]
def read(kind, conf):
    out = {}
    for l in open(f"{work}/{kind}-{conf}.txt"):
        p = l.split()
        out[p[0]] = float(p[-1])
    return out
confs = ["none", "naive", "helios"]
cost = {c: read("cost", c) for c in confs}
ms = {c: read("time", c) for c in confs}
print(f"{'shape':6} {'calls':>5} {'cost none':>12} {'naive':>12} {'helios':>12} {'ms none':>10} {'naive':>9} {'helios':>9}  what")
for shape, calls, what in shapes:
    print(f"{shape:6} {calls:>5} " + " ".join(f"{cost[c].get(shape, 0):12.0f}" for c in confs)
          + f" {ms['none'].get(shape, 0):10.1f} {ms['naive'].get(shape, 0):9.1f} {ms['helios'].get(shape, 0):9.1f}  {what}")
PYEOF

echo
echo "Helios's indexes:"
sed 's/^/   /' "$work/helios-ddl.sql"
[ -s "$work/helios-ddl.sql" ] || echo "   (none)"
echo
python3 - "$work" "$naive_bytes" "$helios_bytes" "$method" "${h_before:-0}" "${h_after:-0}" "${h_saving:-0}" \
  "${h_bytes:-0}" "$advise_s" "$(grep -c . "$work/naive-ddl.sql")" "$(grep -c . "$work/helios-ddl.sql" || true)" <<'PYEOF'
import sys
work, naive_b, helios_b, method, hb, ha, hs, h_bytes, advise_s, n_naive, n_helios = sys.argv[1:]
def total(kind, conf, col):
    return sum(float(l.split()[col]) for l in open(f"{work}/{kind}-{conf}.txt"))
cost = {c: total("cost", c, 2) for c in ("none", "naive", "helios")}
secs = {c: total("time", c, 1) / 1000 for c in ("none", "naive", "helios")}
pct = lambda c: f"({cost[c] / cost['none'] * 100:.1f}%)"
mb = lambda b: f"{int(b) / 1048576:.0f} MB"
print(f"{'workload cost (Σ calls × plan cost)':38}none {cost['none']:.0f}   naive {cost['naive']:.0f} {pct('naive')}   helios {cost['helios']:.0f} {pct('helios')}")
print(f"{'indexes':38}naive {n_naive}   helios {n_helios}")
print(f"{'index size':38}naive {mb(naive_b)}   helios {mb(helios_b)}")
print(f"{'workload time (Σ EXPLAIN ANALYZE)':38}none {secs['none']:.1f} s   naive {secs['naive']:.1f} s   helios {secs['helios']:.1f} s")
size = f", index size {mb(h_bytes)} (HypoPG's estimate)" if method == "hypopg" else ""
print(f"Helios's own estimate (ADVISE WORKLOAD): before {float(hb):.0f} after {float(ha):.0f} saving {float(hs):.1f}% (method: {method}; took {advise_s} s){size}")
PYEOF
echo "(% = cost with the indexes ÷ cost with none; lower is better)"
problems=$(grep -c -E ' (WARN|ERROR) ' "$work/helios.log" || true)
echo "SF $SF, $lineitems lineitem rows; whole run $(elapsed); warnings/errors in Helios's log: $problems"
if [ "$problems" != 0 ]; then
  grep -E ' (WARN|ERROR) ' "$work/helios.log" | head -n 10
fi
