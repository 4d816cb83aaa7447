#!/usr/bin/env bash
# End-to-end comparison, measured side by side in one run:
#   direct PostgreSQL  vs  Helios  vs  PgBouncer (session mode)
#
# - pgbench -S (scale 10, 8 clients, 2 threads) in simple, extended and
#   prepared modes against each target, rounds interleaved, median tps;
# - 1 client (simple protocol) for latency: the average latency each proxy adds;
# - Helios's peak RSS while relaying a ~1 GB result (rows and COPY).
#
# Usage: benches/e2e.sh            (DURATION=10 ROUNDS=3 by default)
#        DURATION=5 ROUNDS=1 benches/e2e.sh   (a quick look)
# Needs: PostgreSQL server binaries, pgbench, psql, pgbouncer (.ci/run installs them).
set -euo pipefail

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SCALE=${SCALE:-10}
CLIENTS=${CLIENTS:-8}
THREADS=${THREADS:-2}
# Helios's event loops (server.worker_threads; 0 = one per core, the default).
HELIOS_WORKERS=${HELIOS_WORKERS:-0}
RSS_ROWS=${RSS_ROWS:-1000000}   # rows of 1000 bytes: ~1 GB

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
command -v pgbouncer >/dev/null || { echo "pgbouncer not found (apt-get install pgbouncer)" >&2; exit 1; }

# Run as the postgres user when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/helios-bench.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres "$work"
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -f "$work/pgbouncer.pid" ] && kill "$(cat "$work/pgbouncer.pid")" 2>/dev/null || true
  [ -f "$work/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT

echo "== building Helios (release)"
(cd "$here" && cargo build --release --quiet --bin helios)
HELIOS="$CARGO_TARGET_DIR/release/helios"

PG_PORT=$(free_port); HELIOS_PORT=$(free_port); BOUNCER_PORT=$(free_port)

echo "== starting PostgreSQL ($("$BIN/postgres" --version)) on port $PG_PORT"
as_pg "$BIN/initdb" -D "$work/data" -A trust -U postgres >/dev/null
as_pg "$BIN/pg_ctl" -D "$work/data" -l "$work/pg.log" -w \
  -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB" \
  start >/dev/null
as_pg "$BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >/dev/null 2>&1

# Both proxies reach PostgreSQL the same way: its Unix socket, as a proxy on
# the database host would.
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
EOF
"$HELIOS" --config "$work/helios.toml" 2>"$work/helios.log" &
pids+=($!); HELIOS_PID=$!

cat >"$work/pgbouncer.ini" <<EOF
[databases]
* = host=$work port=$PG_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 100
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
EOF
echo '"postgres" ""' >"$work/userlist.txt"
[ "$(id -u)" = 0 ] && chown postgres "$work"/pgbouncer.ini "$work"/userlist.txt
as_pg pgbouncer "$work/pgbouncer.ini" 2>"$work/pgbouncer.stderr" &
pids+=($!)

for i in $(seq 50); do
  if as_pg "$BIN/psql" -X -q -h 127.0.0.1 -p "$HELIOS_PORT" -U postgres -c 'select 1' postgres >/dev/null 2>&1 &&
     as_pg "$BIN/psql" -X -q -h 127.0.0.1 -p "$BOUNCER_PORT" -U postgres -c 'select 1' postgres >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done

# pgbench against a port; prints "tps latency_ms".
bench() {
  local port=$1 mode=$2 clients=$3 threads=$4
  as_pg "$BIN/pgbench" -S -n -M "$mode" -c "$clients" -j "$threads" -T "$DURATION" \
    -h 127.0.0.1 -p "$port" -U postgres postgres 2>&1 |
    awk '/^tps =/ {tps=$3} END {print tps}'
}

median() { python3 -c 'import sys,statistics; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.1f}")' "$@"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }

declare -A TPS LAT
targets=(direct helios pgbouncer)
port_of() { case $1 in direct) echo "$PG_PORT";; helios) echo "$HELIOS_PORT";; pgbouncer) echo "$BOUNCER_PORT";; esac; }

echo "== pgbench -S, scale $SCALE, $CLIENTS clients, $THREADS threads, ${DURATION}s x $ROUNDS rounds (interleaved)"
for mode in simple extended prepared; do
  for r in $(seq "$ROUNDS"); do
    # Rotate the order each round so no target always runs first.
    for k in 0 1 2; do
      t=${targets[$(( (k + r) % 3 ))]}
      read -r tps < <(bench "$(port_of "$t")" "$mode" "$CLIENTS" "$THREADS")
      TPS[$mode,$t]="${TPS[$mode,$t]:-} $tps"
    done
  done
done

echo "== 1 client, simple protocol, ${DURATION}s x $ROUNDS rounds"
for r in $(seq "$ROUNDS"); do
  for k in 0 1 2; do
    t=${targets[$(( (k + r) % 3 ))]}
    # One client: average latency = 1 / tps (pgbench prints it in whole us only).
    read -r tps < <(bench "$(port_of "$t")" simple 1 1)
    LAT[$t]="${LAT[$t]:-} $tps"
  done
done

echo
printf '%-10s %12s %12s %12s %10s %10s\n' mode direct helios pgbouncer helios/d pgb/d
for mode in simple extended prepared; do
  d=$(median ${TPS[$mode,direct]}); h=$(median ${TPS[$mode,helios]}); b=$(median ${TPS[$mode,pgbouncer]})
  printf '%-10s %12s %12s %12s %10s %10s\n' "$mode" "$d" "$h" "$b" "$(ratio "$h" "$d")" "$(ratio "$b" "$d")"
done
echo
ld=$(median ${LAT[direct]}); lh=$(median ${LAT[helios]}); lb=$(median ${LAT[pgbouncer]})
python3 - "$ld" "$lh" "$lb" <<'EOF'
import sys
d, h, b = (1e6 / float(x) for x in sys.argv[1:])
print(f"latency, 1 client, simple (avg): direct {d:.1f} us, helios {h:.1f} us (+{h-d:.1f} us), pgbouncer {b:.1f} us (+{b-d:.1f} us)")
EOF

echo
echo "== Helios peak RSS while relaying ~$((RSS_ROWS / 1000)) MB"
rss_before=$(awk '/VmHWM/ {print $2}' /proc/$HELIOS_PID/status)
as_pg "$BIN/psql" -X -q -v FETCH_COUNT=10000 -h 127.0.0.1 -p "$HELIOS_PORT" -U postgres postgres \
  -c "select repeat('x', 1000) from generate_series(1, $RSS_ROWS)" >/dev/null
as_pg "$BIN/psql" -X -q -h 127.0.0.1 -p "$HELIOS_PORT" -U postgres postgres \
  -c "copy (select repeat('x', 1000) from generate_series(1, $RSS_ROWS)) to stdout" >/dev/null
rss_after=$(awk '/VmHWM/ {print $2}' /proc/$HELIOS_PID/status)
echo "Helios peak RSS: $((rss_before / 1024)) MB after the pgbench runs; $((rss_after / 1024)) MB after relaying $((RSS_ROWS / 1000)) MB of rows and $((RSS_ROWS / 1000)) MB of COPY data"
