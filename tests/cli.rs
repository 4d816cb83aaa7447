//! The command line: `helios check-config FILE` (validation, the effective
//! configuration with secrets redacted, `${VAR}` and `HELIOS_...` from the
//! environment) and starting without an upstream.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

/// `helios` with a clean environment as far as Helios is concerned, plus `env`.
fn helios(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_helios"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("HELIOS_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("running helios");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "helios {args:?} did not exit within 20s:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write(dir: &Path, text: &str) -> String {
    let path = dir.join("helios.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn check_config(text: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), text);
    helios(&["check-config", &path], env)
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// check-config succeeded; its output parsed as TOML.
fn effective(o: &Output) -> toml::Table {
    assert!(
        o.status.success(),
        "check-config failed ({}):\n{}",
        o.status,
        err(o)
    );
    out(o)
        .parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("check-config printed invalid TOML ({e}):\n{}", out(o)))
}

/// check-config failed, saying something on stderr and nothing on stdout.
fn failure(o: &Output) -> String {
    assert!(!o.status.success(), "check-config accepted it:\n{}", out(o));
    assert!(
        out(o).trim().is_empty(),
        "printed a config anyway:\n{}",
        out(o)
    );
    let e = err(o);
    assert!(!e.trim().is_empty(), "failed without saying why");
    e
}

fn get<'a>(t: &'a toml::Table, path: &str) -> &'a toml::Value {
    let mut parts = path.split('.');
    let mut v = t
        .get(parts.next().unwrap())
        .unwrap_or_else(|| panic!("{path} missing from:\n{t}"));
    for p in parts {
        v = v
            .get(p)
            .unwrap_or_else(|| panic!("{path} missing from:\n{t}"));
    }
    v
}

// ------------------------------------------------------------ check-config

#[test]
fn check_config_prints_the_effective_config_with_every_secret_redacted() {
    let md5 = "md5b0c2e8d79b1b4b8a5a3e6d1c2f3a4b5c";
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:6543"
max_client_conn = 17

[upstream]
url = "postgres://svc:Url-Secret-1@db.example:5432/app"

[auth]
method = "md5"

[[auth.users]]
name = "alice"
password = "Alice-Secret-2"
upstream_password = "Upstream-Secret-3"

[[auth.users]]
name = "bob"
secret = "{md5}"

[pool]
max_size = 3
"#
    );
    let o = check_config(&text, &[]);
    let t = effective(&o);
    let printed = out(&o);
    for secret in [
        "Url-Secret-1",
        "Alice-Secret-2",
        "Upstream-Secret-3",
        &md5[3..],
    ] {
        assert!(
            !printed.contains(secret) && !err(&o).contains(secret),
            "{secret} leaked:\n{printed}"
        );
    }
    assert_eq!(
        get(&t, "upstream.url").as_str(),
        Some("postgres://svc:<redacted>@db.example:5432/app")
    );
    let users = get(&t, "auth.users").as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["name"].as_str(), Some("alice"));
    assert_eq!(users[0]["password"].as_str(), Some("<redacted>"));
    assert_eq!(users[0]["upstream_password"].as_str(), Some("<redacted>"));
    assert_eq!(users[1]["name"].as_str(), Some("bob"));
    assert_eq!(users[1]["secret"].as_str(), Some("<redacted>"));
    // What was written, and the defaults for the rest.
    assert_eq!(get(&t, "server.listen").as_str(), Some("127.0.0.1:6543"));
    assert_eq!(get(&t, "server.max_client_conn").as_integer(), Some(17));
    assert_eq!(get(&t, "pool.max_size").as_integer(), Some(3));
    assert_eq!(get(&t, "auth.method").as_str(), Some("md5"));
    assert_eq!(get(&t, "pool.reset_query").as_str(), Some("DISCARD ALL"));
}

#[test]
fn check_config_redacts_the_upstream_password_in_every_url_form() {
    // Each is a URL Helios accepts; none of its password may be printed.
    let forms = [
        ("postgres://svc:SecretA1@db:5432/app", "SecretA1"),
        ("postgres://svc:Sec@retA2@db:5432/app", "retA2"),
        (
            "host=db port=5432 user=svc password=SecretB1 dbname=app",
            "SecretB1",
        ),
        ("host=db user=svc password='Secret B2' dbname=app", "B2"),
        (
            "host=db user=svc password = SecretB3 dbname=app",
            "SecretB3",
        ),
        ("postgresql://db/app?user=svc&password=SecretC1", "SecretC1"),
        (
            "postgres://svc@db/app?password=SecretC2&sslmode=disable",
            "SecretC2",
        ),
    ];
    let mut leaks = Vec::new();
    for (url, secret) in forms {
        let o = check_config(&format!("[upstream]\nurl = \"{url}\"\n"), &[]);
        let t = effective(&o);
        let printed = get(&t, "upstream.url").as_str().unwrap().to_string();
        if out(&o).contains(secret) || err(&o).contains(secret) {
            leaks.push(format!("{url:?} was printed as {printed:?}"));
        } else {
            assert!(printed.contains("<redacted>"), "{url:?} -> {printed:?}");
        }
    }
    assert!(
        leaks.is_empty(),
        "check-config printed (part of) the upstream password:\n{}",
        leaks.join("\n")
    );
}

#[test]
fn check_config_errors_do_not_echo_secrets() {
    for (text, secret) in [
        (
            "[upstream]\nurl = \"postgres://svc:SecretD1@db:notaport/app\"\n",
            "SecretD1",
        ),
        (
            "[upstream]\nurl = \"host=db port=x password=SecretD2\"\n",
            "SecretD2",
        ),
        // A password written as a number is a type error, but still a password.
        (
            "[[auth.users]]\nname = \"a\"\npassword = 73914628\n",
            "73914628",
        ),
    ] {
        let e = failure(&check_config(text, &[]));
        assert!(!e.contains(secret), "the error shows the secret: {e}");
    }
}

#[test]
fn check_config_rejects_an_unknown_key_naming_it() {
    let e = failure(&check_config("[pool]\nmax_sise = 3\n", &[]));
    assert!(e.contains("pool") && e.contains("max_sise"), "{e}");
    let e = failure(&check_config("[sever]\nlisten = \"127.0.0.1:1\"\n", &[]));
    assert!(e.contains("sever"), "{e}");
    let e = failure(&check_config(
        "[[auth.users]]\nname = \"a\"\npasword = \"x\"\n",
        &[],
    ));
    assert!(e.contains("pasword"), "{e}");
}

#[test]
fn check_config_rejects_bad_values_naming_the_key() {
    for (text, key) in [
        ("[pool]\nidle_timeout = \"forever\"\n", "pool.idle_timeout"),
        ("[pool]\nmax_size = 0\n", "pool.max_size"),
        ("[pool]\nmax_size = \"many\"\n", "pool.max_size"),
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        (
            "[server]\nmax_message_size = \"huge\"\n",
            "server.max_message_size",
        ),
        ("[auth]\nmethod = \"password\"\n", "auth.method"),
        (
            "[upstream]\nurl = \"postgres://h:notaport/db\"\n",
            "upstream.url",
        ),
        (
            "[tls]\ncert_file = \"/etc/ssl/x.crt\"\n",
            "tls.key_file",
        ),
        (
            "[auth]\nmethod = \"scram-sha-256\"\n[[auth.users]]\nname = \"a\"\nsecret = \"md50123456789abcdef0123456789abcdef\"\n",
            "auth.users[0].secret",
        ),
        (
            "[[auth.users]]\nname = \"a\"\npassword = \"p\"\nsecret = \"md50123456789abcdef0123456789abcdef\"\n",
            "auth.users[0].secret",
        ),
        (
            "[[auth.users]]\nname = \"a\"\nsecret = \"SCRAM-SHA-256$garbage\"\n",
            "auth.users[0].secret",
        ),
        (
            "[auth]\nmethod = \"md5\"\n[[auth.users]]\nname = \"a\"\n",
            "auth.users[0].password",
        ),
    ] {
        let e = failure(&check_config(text, &[]));
        assert!(
            e.contains(key),
            "{text:?}: the error should name {key}:\n{e}"
        );
    }
    // Not TOML at all.
    let e = failure(&check_config("[pool\nmax_size = 3\n", &[]));
    assert!(e.contains("helios.toml"), "should name the file: {e}");
}

#[test]
fn check_config_replaces_environment_variables() {
    let text = "[pool]\nreset_query = \"${HELIOS_TEST_RESET}\"\n\
                [[auth.users]]\nname = \"alice\"\npassword = \"${HELIOS_TEST_PW}\"\n\
                [upstream]\nurl = \"postgres://svc:${HELIOS_TEST_PW}@db:${HELIOS_TEST_DBPORT:-5433}/app\"\n";
    let o = check_config(
        text,
        &[
            ("HELIOS_TEST_RESET", "RESET ALL"),
            ("HELIOS_TEST_PW", "Env-Secret-7"),
        ],
    );
    let t = effective(&o);
    assert_eq!(get(&t, "pool.reset_query").as_str(), Some("RESET ALL"));
    assert_eq!(
        get(&t, "upstream.url").as_str(),
        Some("postgres://svc:<redacted>@db:5433/app")
    );
    assert!(!out(&o).contains("Env-Secret-7"), "{}", out(&o));

    // Unset: an error naming the variable (and the key).
    let e = failure(&check_config(text, &[("HELIOS_TEST_RESET", "RESET ALL")]));
    assert!(e.contains("HELIOS_TEST_PW"), "{e}");
    assert!(
        e.contains("auth.users") || e.contains("upstream.url"),
        "{e}"
    );
    let e = failure(&check_config(text, &[("HELIOS_TEST_PW", "x")]));
    assert!(
        e.contains("HELIOS_TEST_RESET") && e.contains("pool.reset_query"),
        "{e}"
    );
}

#[test]
fn check_config_applies_helios_environment_overrides() {
    let text = "[pool]\nmax_size = 3\n";
    let t = effective(&check_config(
        text,
        &[
            ("HELIOS_POOL__MAX_SIZE", "7"),
            ("HELIOS_UPSTREAM__URL", "postgres://db.example:5444/app"),
            ("HELIOS_SERVER__STARTUP_TIMEOUT", "3s"),
        ],
    ));
    assert_eq!(get(&t, "pool.max_size").as_integer(), Some(7));
    assert_eq!(
        get(&t, "upstream.url").as_str(),
        Some("postgres://db.example:5444/app")
    );
    assert_eq!(get(&t, "server.startup_timeout").as_str(), Some("3s"));
    // Without the override, the file's value.
    let t = effective(&check_config(text, &[]));
    assert_eq!(get(&t, "pool.max_size").as_integer(), Some(3));
    // An override naming no key is an error naming it.
    let e = failure(&check_config(text, &[("HELIOS_POOL__MAX_SIZ", "7")]));
    assert!(e.contains("max_siz"), "{e}");
}

#[test]
fn check_config_reads_the_config_flag_when_no_file_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "[pool]\nmax_size = 9\n");
    let o = helios(&["--config", &path, "check-config"], &[]);
    assert_eq!(get(&effective(&o), "pool.max_size").as_integer(), Some(9));
    let o = helios(&["check-config"], &[("HELIOS_CONFIG", &path)]);
    assert_eq!(get(&effective(&o), "pool.max_size").as_integer(), Some(9));
    let o = helios(&["check-config", "/nonexistent/helios.toml"], &[]);
    let e = failure(&o);
    assert!(e.contains("/nonexistent/helios.toml"), "{e}");
}

// ------------------------------------------------------------------ serving
