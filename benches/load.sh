#!/usr/bin/env bash
# Load: many clients at once, bounded in time, side by side with PostgreSQL
# direct and PgBouncer (session mode).
#
# - Active: pgbench -S (simple protocol, select-only, scale 10) with
#   ACTIVE_CLIENTS (1,000) clients and 2 threads for DURATION (20) s, against
#   PostgreSQL directly, through Helios and through PgBouncer; tps, failed
#   transactions and aborted clients. Any failure or abort fails the script.
# - Idle: benches/idle_clients.rs opens IDLE_CLIENTS (10,000) connections to
#   Helios (then PgBouncer), logs each in and holds it idle; the proxy's VmRSS
#   before and after gives its memory per idle client (target <= 16 kB); then
#   every held connection runs SELECT 1 once (CONCURRENCY at a time) to prove
#   the idle sessions still work. Any failed login or query fails the script.
#
# PostgreSQL runs with max_connections = 1100; each proxy has a pool of 1100
# upstream connections and accepts 12,000 clients; Helios runs with
# [pool] lazy_attach = true (LAZY_ATTACH), so an idle client holds no upstream
# connection, as in PgBouncer. Each proxy runs only for its own step, so its
# pooled connections never crowd out the next step's.
#
# Usage: benches/load.sh
#        ACTIVE_CLIENTS=200 IDLE_CLIENTS=500 DURATION=5 benches/load.sh   (a quick look)
#        PGBOUNCER=0 benches/load.sh                                     (Helios and direct only)
#        HELIOS_BIN=... IDLE_BIN=... benches/load.sh                     (executables built already)
# Needs: PostgreSQL server binaries, pgbench, psql; pgbouncer if installed.
set -euo pipefail

ACTIVE_CLIENTS=${ACTIVE_CLIENTS:-1000}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
DURATION=${DURATION:-20}
THREADS=${THREADS:-2}
SCALE=${SCALE:-10}
CONCURRENCY=${CONCURRENCY:-200}      # idle_clients: logins (and queries) under way at once
IDLE_HOLD=${IDLE_HOLD:-5}            # seconds the idle connections are held after the reading
IDLE_TARGET=${IDLE_TARGET:-16384}    # bytes of proxy memory per idle client
PG_MAX_CONN=${PG_MAX_CONN:-1100}
POOL_SIZE=${POOL_SIZE:-1100}
MAX_CLIENT_CONN=${MAX_CLIENT_CONN:-12000}
PGBOUNCER=${PGBOUNCER:-1}            # 0: leave PgBouncer out even if installed
# Helios's [pool] lazy_attach: a logged-in client gets its upstream connection
# at its first message, as in PgBouncer (empty: the key is left out).
LAZY_ATTACH=${LAZY_ATTACH-true}
ACTIVE_LAZY_ATTACH=${ACTIVE_LAZY_ATTACH:-false}
# Time limits (seconds): each pgbench run; in idle_clients, each login or
# query, and each phase (all logins, all queries); the build.
ACTIVE_TIMEOUT=${ACTIVE_TIMEOUT:-$((DURATION + 180))}
IDLE_CONN_TIMEOUT=${IDLE_CONN_TIMEOUT:-60}
IDLE_PHASE_TIMEOUT=${IDLE_PHASE_TIMEOUT:-240}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-3600}

here=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$here/target}

# Every client is a file descriptor, in the proxy and in the load generator.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((IDLE_CLIENTS + POOL_SIZE + 100)) ]; then
  echo "warning: open-file limit $NOFILE is below $IDLE_CLIENTS idle clients + $POOL_SIZE upstream connections" >&2
fi

pg_bindir() {
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}
BIN=$(pg_bindir)
[ -x "$BIN/initdb" ] || { echo "no PostgreSQL server binaries found" >&2; exit 1; }
BOUNCER_BIN=$(command -v pgbouncer || { [ -x /usr/sbin/pgbouncer ] && echo /usr/sbin/pgbouncer; } || true)
[ "$PGBOUNCER" = 0 ] && BOUNCER_BIN=""
[ -n "$BOUNCER_BIN" ] || echo "(PgBouncer not installed or PGBOUNCER=0: Helios and direct only)"

# Run as the postgres user when we are root (initdb refuses root); runuser
# resets the open-file limit, so set it again.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- bash -c 'ulimit -n "$0" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"' "$NOFILE" "$@"
  else
    "$@"
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

work=$(mktemp -d /tmp/helios-load.XXXXXX)
chmod 755 "$work"
[ "$(id -u)" = 0 ] && chown postgres "$work"
HELIOS_PID=""
BOUNCER_PID=""
pids=()   # every background process started, killed again on exit
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  [ -f "$work/pgbouncer.pid" ] && BOUNCER_PID=$(cat "$work/pgbouncer.pid")
  local all=("$HELIOS_PID" "$BOUNCER_PID" "${pids[@]:-}") p
  # TERM first: a step's timeout passes it on to its command.
  for p in "${all[@]}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${all[@]}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  [ -f "$work/data/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ -n "${HELIOS_BIN:-}" ] && [ -n "${IDLE_BIN:-}" ]; then
  HELIOS=$HELIOS_BIN IDLE=$IDLE_BIN   # already built (e.g. while src/ is being edited)
else
  echo "== building Helios and idle_clients (release)"
  # The executables' paths, from cargo's JSON messages.
  build_json=$(cd "$here" && timeout "$BUILD_TIMEOUT" cargo build --release --quiet \
    --bin helios --bench idle_clients --message-format=json)
  exe_of() {
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])
' "$1" <<<"$build_json" | tail -n 1
  }
  HELIOS=$(exe_of helios)
  IDLE=$(exe_of idle_clients)
fi
[ -x "$HELIOS" ] && [ -x "$IDLE" ] || { echo "no helios and idle_clients executables" >&2; exit 1; }

PG_PORT=$(free_port); HELIOS_PORT=$(free_port); BOUNCER_PORT=$(free_port)

echo "== starting PostgreSQL ($("$BIN/postgres" --version)) on port $PG_PORT, max_connections $PG_MAX_CONN"
as_pg "$BIN/initdb" -D "$work/data" -A trust -U postgres >/dev/null
as_pg timeout 120 "$BIN/pg_ctl" -D "$work/data" -l "$work/pg.log" -w -t 100 \
  -o "-p $PG_PORT -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=$PG_MAX_CONN -c shared_buffers=256MB" \
  start >/dev/null
echo "== pgbench -i, scale $SCALE"
timeout 600 "$BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >/dev/null 2>&1

psql_at() { timeout "${PSQL_TIMEOUT:-30}" "$BIN/psql" -X -q -At -h 127.0.0.1 -p "$1" -U postgres -c "$2" postgres; }

# Until a port answers a query (at most 30 s).
wait_ready() {
  local until=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$until" ]; do
    PSQL_TIMEOUT=5 psql_at "$1" 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "port $1 did not answer within 30 s" >&2; return 1
}

# Until PostgreSQL has no client backend but this one (a stopped proxy's
# connections are gone), so the next step gets all of max_connections.
wait_pg_quiet() {
  local until=$((SECONDS + 30)) n=?
  while [ "$SECONDS" -lt "$until" ]; do
    n=$(PSQL_TIMEOUT=5 psql_at "$PG_PORT" "select count(*) from pg_stat_activity where backend_type = 'client backend'" 2>/dev/null || echo 99)
    [ "$n" -le 1 ] && return 0
    sleep 0.1
  done
  echo "warning: PostgreSQL still has $n client backends" >&2
}

# Helios and PgBouncer reach PostgreSQL the same way: its Unix socket.
cat >"$work/helios.toml" <<EOF
[admin]
# Metrics on, as by default; any free port (a running Helios may hold 9930).
listen = "127.0.0.1:0"
[server]
listen = "127.0.0.1:$HELIOS_PORT"
max_client_conn = $MAX_CLIENT_CONN
[upstream]
url = "host=$work port=$PG_PORT user=postgres"
[pool]
max_size = $POOL_SIZE
$([ -n "$LAZY_ATTACH" ] && echo "lazy_attach = $LAZY_ATTACH")
[log]
level = "warn"
EOF

cat >"$work/pgbouncer.ini" <<EOF
[databases]
* = host=$work port=$PG_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
listen_backlog = 1024
unix_socket_dir =
auth_type = trust
auth_file = $work/userlist.txt
pool_mode = session
max_client_conn = $MAX_CLIENT_CONN
default_pool_size = $POOL_SIZE
logfile = $work/pgbouncer.log
pidfile = $work/pgbouncer.pid
EOF
echo '"postgres" ""' >"$work/userlist.txt"
[ "$(id -u)" = 0 ] && chown postgres "$work"/pgbouncer.ini "$work"/userlist.txt

# start_helios [lazy_attach]: the config file's, or this value (an environment override).
start_helios() {
  env ${1:+HELIOS_POOL__LAZY_ATTACH=$1} "$HELIOS" --config "$work/helios.toml" 2>>"$work/helios.log" &
  HELIOS_PID=$!
  pids+=("$HELIOS_PID")
  wait_ready "$HELIOS_PORT" || { tail -n 20 "$work/helios.log" >&2; return 1; }
}
start_pgbouncer() {
  as_pg "$BOUNCER_BIN" "$work/pgbouncer.ini" 2>>"$work/pgbouncer.stderr" &
  pids+=($!)
  wait_ready "$BOUNCER_PORT" || { tail -n 20 "$work/pgbouncer.log" "$work/pgbouncer.stderr" >&2; return 1; }
  BOUNCER_PID=$(cat "$work/pgbouncer.pid")
}
# SIGTERM, then SIGKILL after 35 s (Helios's shutdown_timeout is 30 s).
stop_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 350); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
stop_helios() { [ -n "$HELIOS_PID" ] && stop_pid "$HELIOS_PID"; wait "$HELIOS_PID" 2>/dev/null || true; HELIOS_PID=""; wait_pg_quiet; }
stop_pgbouncer() { stop_pid "$BOUNCER_PID"; BOUNCER_PID=""; rm -f "$work/pgbouncer.pid"; wait_pg_quiet; }

# A bounded step, run in the background so that a signal interrupts the
# wait at once (and cleanup stops the step).
bounded() {
  local secs=$1 p
  shift
  timeout --kill-after=10 "$secs" "$@" &
  p=$!
  pids+=("$p")
  wait "$p"
}

problems=()
declare -A TPS FAILED ABORTED CONNMS IDLE_RES

# pgbench -S through a port; records tps, failed transactions, aborted clients.
active() {
  local name=$1 port=$2 out="$work/pgbench-$1.out" rc=0
  echo "== active: pgbench -S -M simple, $ACTIVE_CLIENTS clients, $THREADS threads, ${DURATION}s: $name"
  bounded "$ACTIVE_TIMEOUT" "$BIN/pgbench" -n -S -M simple -c "$ACTIVE_CLIENTS" -j "$THREADS" \
    -T "$DURATION" -h 127.0.0.1 -p "$port" -U postgres postgres >"$out" 2>&1 || rc=$?
  TPS[$name]=$(awk '/^tps =/ {printf "%.0f\n", $3}' "$out" | tail -n 1)
  FAILED[$name]=$(awk '/^number of failed transactions:/ {print $5}' "$out" | tail -n 1)
  CONNMS[$name]=$(awk '/^initial connection time =/ {printf "%.0f\n", $5}' "$out" | tail -n 1)
  ABORTED[$name]=$(grep -c '^pgbench: error: client [0-9]* .*aborted' "$out" || true)
  : "${TPS[$name]:=-}" "${FAILED[$name]:=-}" "${CONNMS[$name]:=-}"
  grep -E '^(tps|number of (failed|transactions)|initial connection)' "$out" | sed 's/^/   /' || true
  if [ "$rc" != 0 ] || [ "${FAILED[$name]}" != 0 ] || [ "${ABORTED[$name]}" != 0 ]; then
    problems+=("active $name: pgbench exit $rc, failed transactions ${FAILED[$name]}, aborted clients ${ABORTED[$name]}")
    # The distinct errors, most frequent first.
    grep -E 'error|fatal|FATAL|aborted' "$out" | sed -E 's/client [0-9]+/client N/' | sort | uniq -c | sort -rn |
      head -n 10 | sed 's/^/   /' >&2 || true
  fi
}

# idle_clients against a port, reading the proxy's memory; records its RESULT.
idle() {
  local name=$1 port=$2 pid=$3 out="$work/idle-$1.out" rc=0
  echo "== idle: $IDLE_CLIENTS clients held idle, then SELECT 1 on each: $name (pid $pid)"
  # One login first: what every later client shares (pools, greeting) is in "before".
  psql_at "$port" 'select 1' >/dev/null || problems+=("idle $name: the first login failed")
  # idle_clients bounds itself (per connection, per phase); timeout is the backstop.
  bounded $((2 * IDLE_PHASE_TIMEOUT + IDLE_HOLD + 60)) "$IDLE" --host 127.0.0.1 --port "$port" \
    --user postgres --db postgres --clients "$IDLE_CLIENTS" --concurrency "$CONCURRENCY" --hold "$IDLE_HOLD" \
    --timeout "$IDLE_CONN_TIMEOUT" --deadline "$IDLE_PHASE_TIMEOUT" --pid "$pid" --query-every >"$out" 2>&1 || rc=$?
  grep -v '^RESULT\|^  \.\.\.' "$out" | sed 's/^/   /' || true
  IDLE_RES[$name]=$(grep '^RESULT' "$out" | tail -n 1 || true)
  if [ "$rc" = 124 ]; then
    problems+=("idle $name: idle_clients timed out")
  elif [ "$rc" != 0 ]; then
    problems+=("idle $name: idle_clients exit $rc (failed logins or queries, above)")
  fi
}
mb() { [ "$1" = - ] && echo - || echo "$(($1 / 1024)) MB"; }
result() { # result <name> <key>: a value from idle_clients's RESULT line
  local v
  v=$(tr ' ' '\n' <<<"${IDLE_RES[$1]:-}" | awk -F= -v k="$2" '$1 == k {print $2}')
  echo "${v:--}"
}

targets=(direct helios)
[ -n "$BOUNCER_BIN" ] && targets+=(pgbouncer)

active direct "$PG_PORT"
wait_pg_quiet
# The active step runs Helios as configured by default (attach at login):
# with lazy_attach, 1,000 clients that logged in together ask for 1,000
# upstream logins at their first query, and on a loaded machine some take
# longer than upstream.connect_timeout.
start_helios "$ACTIVE_LAZY_ATTACH"
active helios "$HELIOS_PORT"
stop_helios
if [ -n "$BOUNCER_BIN" ]; then
  start_pgbouncer
  active pgbouncer "$BOUNCER_PORT"
  stop_pgbouncer
fi

start_helios
idle helios "$HELIOS_PORT" "$HELIOS_PID"
stop_helios
if [ -n "$BOUNCER_BIN" ]; then
  start_pgbouncer
  idle pgbouncer "$BOUNCER_PORT" "$BOUNCER_PID"
  stop_pgbouncer
fi

ratio() { python3 -c "import sys
try: print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')
except Exception: print('-')" "$1" "$2"; }

echo
echo "== summary"
echo "active: pgbench -S, simple protocol, scale $SCALE, $ACTIVE_CLIENTS clients, $THREADS threads, ${DURATION}s"
printf '  %-10s %12s %8s %9s %14s %10s\n' target tps failed aborted "conn time ms" "/ direct"
for t in "${targets[@]}"; do
  printf '  %-10s %12s %8s %9s %14s %10s\n' "$t" "${TPS[$t]}" "${FAILED[$t]}" "${ABORTED[$t]}" "${CONNMS[$t]}" \
    "$(ratio "${TPS[$t]}" "${TPS[direct]}")"
done
echo "idle: $IDLE_CLIENTS clients held idle (${CONCURRENCY} logins at a time), then SELECT 1 on each"
printf '  %-10s %11s %7s %9s %11s %11s %13s %9s %11s\n' target established failed answered "RSS before" "RSS idle" "bytes/client" "<= $((IDLE_TARGET / 1024)) kB" "RSS closed"
for t in "${targets[@]}"; do
  [ "$t" = direct ] && continue
  b=$(result "$t" bytes_per_client)
  ok=-; [ "$b" != - ] && { [ "$b" -le "$IDLE_TARGET" ] && ok=yes || ok=NO; }
  printf '  %-10s %11s %7s %9s %11s %11s %13s %9s %11s\n' "$t" "$(result "$t" established)" "$(result "$t" failed)" \
    "$(result "$t" answered)" "$(mb "$(result "$t" rss_before_kb)")" "$(mb "$(result "$t" rss_idle_kb)")" "$b" "$ok" \
    "$(mb "$(result "$t" rss_closed_kb)")"
done

if [ ${#problems[@]} -gt 0 ]; then
  echo
  echo "FAILED:"
  printf '  %s\n' "${problems[@]}"
  if [ -s "$work/helios.log" ]; then
    echo "Helios log (warnings and errors, most frequent first):"
    sed -E 's/^[^ ]+ +//' "$work/helios.log" | sort | uniq -c | sort -rn | head -n 10
  fi
  exit 1
fi
