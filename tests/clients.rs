//! Real client programs through Helios: psql and pgbench.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{pg_bindir, Helios, PgServer};

/// Run a command to completion, killing it (and failing) after `limit`.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = reader(Box::new(child.stdout.take().unwrap()));
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("{what} did not finish within {limit:?}\nstdout:\n{out}\nstderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A client program from the PostgreSQL installation, with no environment
/// that could point it elsewhere.
fn pg_program(name: &str) -> Command {
    let mut c = Command::new(pg_bindir().join(name));
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGOPTIONS",
        "PGSERVICE",
        "PGAPPNAME",
        "PGSSLMODE",
    ] {
        c.env_remove(var);
    }
    c.env("PGCONNECT_TIMEOUT", "10");
    c
}

/// psql against `host` (an address or a socket directory) and `port`,
/// without reading ~/.psqlrc.
fn psql(host: &str, port: u16) -> Command {
    let mut c = pg_program("psql");
    c.args(["-X", "-h", host, "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres"]);
    c
}

const PSQL_LIMIT: Duration = Duration::from_secs(60);

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn psql_dash_c_output_is_exact() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");

    let out = run(
        psql("127.0.0.1", helios.port).args(["-c", "select 1 as a, 'x' as b, null as c"]),
        PSQL_LIMIT,
    );
    assert_success(&out, "psql -c");
    assert_eq!(
        text(&out.stdout),
        " a | b | c \n---+---+---\n 1 | x | \n(1 row)\n\n"
    );
    assert_eq!(text(&out.stderr), "");

    let out = run(
        psql("127.0.0.1", helios.port).args([
            "-At",
            "-c",
            "select g, g * g from generate_series(1, 3) g",
            "-c",
            "select 'two' || 'words'",
        ]),
        PSQL_LIMIT,
    );
    assert_success(&out, "psql -At -c -c");
    assert_eq!(text(&out.stdout), "1|1\n2|4\n3|9\ntwowords\n");

    // The same, byte for byte, as psql talking to PostgreSQL directly.
    let args = [
        "-c",
        "select now()::date = current_date as today, E'multi\\nline' as m, 1.50::numeric as n",
    ];
    let direct = run(psql("127.0.0.1", pg.port).args(args), PSQL_LIMIT);
    let via = run(psql("127.0.0.1", helios.port).args(args), PSQL_LIMIT);
    assert_success(&via, "psql through Helios");
    assert_eq!(text(&via.stdout), text(&direct.stdout));
}

#[test]
fn psql_runs_a_multi_statement_file() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script.sql");
    std::fs::write(
        &script,
        "create table fruit (id int primary key, name text not null);\n\
         insert into fruit values (1, 'apple'), (2, 'banana');\n\
         insert into fruit values (3, 'cherry'); insert into fruit values (4, 'date');\n\
         begin;\n\
         update fruit set name = upper(name) where id % 2 = 0;\n\
         commit;\n\
         \\echo between\n\
         do $$ begin raise notice 'count is %', (select count(*) from fruit); end $$;\n\
         select id, name\n  from fruit\n order by id;\n\
         select count(*) as n from fruit \\gset\n\
         \\echo n is :n\n",
    )
    .unwrap();
    let out = run(
        psql("127.0.0.1", helios.port)
            .args(["-q", "-At", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&script),
        PSQL_LIMIT,
    );
    assert_success(&out, "psql -f");
    assert_eq!(
        text(&out.stdout),
        "between\n1|apple\n2|BANANA\n3|cherry\n4|DATE\nn is 4\n"
    );
    assert_eq!(
        text(&out.stderr),
        format!("psql:{}:8: NOTICE:  count is 4\n", script.display())
    );
    // It really is in the database.
    assert_eq!(
        pg.psql("select string_agg(name, ',' order by id) from fruit"),
        "apple,BANANA,cherry,DATE\n"
    );
}

#[test]
fn psql_backslash_copy_in_and_out() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.csv");
    let mut csv = String::from("id,name,note\n");
    for i in 1..=1000 {
        csv.push_str(&format!(
            "{i},\"name, {i}\",{}\n",
            if i % 10 == 0 { "" } else { "n" }
        ));
    }
    std::fs::write(&input, &csv).unwrap();
    let script = dir.path().join("copy.sql");
    std::fs::write(
        &script,
        format!(
            "create table people (id int primary key, name text, note text);\n\
             \\copy people from '{}' with (format csv, header true)\n\
             select count(*), count(note), sum(id) from people;\n\
             \\copy (select * from people where id <= 3 or id = 1000 order by id) \
             to '{}' with (format csv)\n\
             \\copy (select id, note from people where id in (9, 10) order by id) to stdout\n",
            input.display(),
            output.display()
        ),
    )
    .unwrap();
    let out = run(
        psql("127.0.0.1", helios.port)
            .args(["-q", "-At", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&script),
        PSQL_LIMIT,
    );
    assert_success(&out, "psql \\copy");
    assert_eq!(text(&out.stdout), "1000|900|500500\n9\tn\n10\t\\N\n");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "1,\"name, 1\",n\n2,\"name, 2\",n\n3,\"name, 3\",n\n1000,\"name, 1000\",\n"
    );
}

#[test]
fn psql_on_error_stop_exits_3_and_runs_nothing_after_the_error() {
    let pg = PgServer::start();
    pg.psql("create table steps (n int)");
    let helios = Helios::start(&pg, "");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stop.sql");
    std::fs::write(
        &script,
        "\\set ON_ERROR_STOP on\n\
         insert into steps values (1);\n\
         select * from no_such_table;\n\
         insert into steps values (2);\n",
    )
    .unwrap();
    let out = run(
        psql("127.0.0.1", helios.port)
            .args(["-q", "-At", "-f"])
            .arg(&script),
        PSQL_LIMIT,
    );
    assert_eq!(out.status.code(), Some(3), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!(
            "psql:{}:3: ERROR:  relation \"no_such_table\" does not exist\n\
             LINE 1: select * from no_such_table;\n                      ^\n",
            script.display()
        )
    );
    assert_eq!(pg.psql("select string_agg(n::text, ',') from steps"), "1\n");

    // Without ON_ERROR_STOP psql goes on past the error (and exits 0).
    let script = dir.path().join("go_on.sql");
    std::fs::write(
        &script,
        "insert into steps values (3);\n\
         select 1/0;\n\
         insert into steps values (4);\n",
    )
    .unwrap();
    let out = run(
        psql("127.0.0.1", helios.port)
            .args(["-q", "-At", "-f"])
            .arg(&script),
        PSQL_LIMIT,
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!("psql:{}:2: ERROR:  division by zero\n", script.display())
    );
    assert_eq!(
        pg.psql("select string_agg(n::text, ',' order by n) from steps"),
        "1,3,4\n"
    );

    // A -c command that fails exits 1.
    let out = run(
        psql("127.0.0.1", helios.port).args(["-c", "select * frm steps"]),
        PSQL_LIMIT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("ERROR:  syntax error at or near \"frm\"\n"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn helios_serves_psql_on_a_unix_socket() {
    let pg = PgServer::start();
    let sockets = tempfile::Builder::new()
        .prefix("helios-sock.")
        .tempdir()
        .unwrap();
    let dir = sockets.path().to_str().unwrap().to_string();
    let helios = Helios::start(&pg, &format!("[server]\nunix_socket_dir = \"{dir}\"\n"));
    let socket = Path::new(&dir).join(format!(".s.PGSQL.{}", helios.port));
    assert!(socket.exists(), "no socket file {}", socket.display());

    let out = run(
        psql(&dir, helios.port).args([
            "-At",
            "-c",
            "select 'via unix', current_user",
            "-c",
            "\\conninfo",
        ]),
        PSQL_LIMIT,
    );
    assert_success(&out, "psql over the Unix socket");
    assert_eq!(
        text(&out.stdout),
        format!(
            "via unix|postgres\nYou are connected to database \"postgres\" as user \"postgres\" \
             via socket in \"{dir}\" at port \"{}\".\n",
            helios.port
        )
    );
}

// ---------------------------------------------------------------------------
// pgbench
// ---------------------------------------------------------------------------

fn pgbench(port: u16) -> Command {
    let mut c = pg_program("pgbench");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"]);
    c
}

const PGBENCH_LIMIT: Duration = Duration::from_secs(300);

/// `pgbench -i -s 1`, then 4 clients x 200 transactions in `mode`, all through Helios.
fn pgbench_through_helios(mode: &str) {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "");

    let out = run(
        pgbench(helios.port).args(["-i", "-s", "1", "postgres"]),
        PGBENCH_LIMIT,
    );
    assert_success(&out, "pgbench -i");
    assert_eq!(
        pg.psql(
            "select (select count(*) from pgbench_accounts), \
             (select count(*) from pgbench_branches), (select count(*) from pgbench_tellers)"
        ),
        "100000|1|10\n"
    );

    let out = run(
        pgbench(helios.port).args(["-c", "4", "-j", "2", "-t", "200", "-M", mode, "postgres"]),
        PGBENCH_LIMIT,
    );
    assert_success(&out, &format!("pgbench -M {mode}"));
    let stdout = text(&out.stdout);
    for line in [
        format!("query mode: {mode}"),
        "number of clients: 4".to_string(),
        "number of transactions per client: 200".to_string(),
        "number of transactions actually processed: 800/800".to_string(),
        "number of failed transactions: 0 (0.000%)".to_string(),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "pgbench did not report \"{line}\":\n{stdout}\n{}",
            text(&out.stderr)
        );
    }
    // Every transaction left its row in the history, and the balances add up.
    assert_eq!(
        pg.psql(
            "select count(*), \
             (select sum(abalance) from pgbench_accounts) = sum(delta), \
             (select sum(bbalance) from pgbench_branches) = sum(delta), \
             (select sum(tbalance) from pgbench_tellers) = sum(delta) \
             from pgbench_history"
        ),
        "800|t|t|t\n"
    );
}

#[test]
fn pgbench_simple_protocol_through_helios() {
    pgbench_through_helios("simple");
}

#[test]
fn pgbench_extended_protocol_through_helios() {
    pgbench_through_helios("extended");
}

#[test]
fn pgbench_prepared_statements_through_helios() {
    pgbench_through_helios("prepared");
}
