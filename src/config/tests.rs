use super::*;

fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_toml_str(text, "test.toml", &vars)
}

#[test]
fn the_example_file_is_valid() {
    let text = include_str!("../../config/helios.toml");
    let c = load(text, &[("HELIOS_APP_PASSWORD", "pw")]).unwrap();
    assert_eq!(c.server.listen.port(), 6432);
}

#[test]
fn defaults_apply_without_a_file() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:6432");
    assert_eq!(c.pool.reset_query, "DISCARD ALL");
    assert_eq!(c.auth.method, AuthMethodName::Trust);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let e = load("[pool]\nmax_sise = 3\n", &[]).unwrap_err().to_string();
    assert!(e.contains("pool") && e.contains("max_sise"), "{e}");
    let e = load("[nope]\n", &[]).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn bad_values_are_errors_naming_the_key() {
    let e = load("[pool]\nidle_timeout = \"forever\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("pool.idle_timeout"), "{e}");
    let e = load("[server]\nlisten = \"nowhere\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("server.listen"), "{e}");
    let e = load("[auth]\nmethod = \"md5\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("auth.users"), "{e}");
    let e = load("[upstream]\nurl = \"postgres://h:notaport/db\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("upstream.url"), "{e}");
}

#[test]
fn environment_interpolates_and_overrides() {
    let text =
        "[upstream]\nurl = \"postgres://helios:${PGPW}@db:5432/app\"\n[pool]\nmax_size = 5\n";
    let c = load(
        text,
        &[
            ("PGPW", "hunter2"),
            ("HELIOS_POOL__MAX_SIZE", "7"),
            ("HELIOS_LOG__FORMAT", "json"),
        ],
    )
    .unwrap();
    assert_eq!(
        c.upstream.url.as_deref(),
        Some("postgres://helios:hunter2@db:5432/app")
    );
    assert_eq!(c.pool.max_size, 7);
    assert_eq!(c.log.format, LogFormat::Json);
    let e = load(text, &[]).unwrap_err().to_string();
    assert!(e.starts_with("upstream.url") && e.contains("PGPW"), "{e}");
    let e = load("", &[("HELIOS_POOL__NOPE", "1")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
}

#[test]
fn redaction_hides_every_secret() {
    let text = r#"
[upstream]
url = "postgres://helios:hunter2@db/app"
[auth]
method = "md5"
[[auth.users]]
name = "app"
password = "s3cret"
upstream_password = "other"
"#;
    let out = load(text, &[]).unwrap().to_redacted_toml();
    for secret in ["hunter2", "s3cret", "other"] {
        assert!(!out.contains(secret), "{secret} leaked:\n{out}");
    }
    assert!(out.contains("postgres://helios:<redacted>@db/app"), "{out}");
    assert_eq!(
        redact_url("host=db password=x user=u"),
        "host=db password=<redacted> user=u"
    );
}

#[test]
fn redaction_covers_every_url_form() {
    for (url, must_hide) in [
        ("host=db user=svc password='Secret B2' dbname=app", "Secret"),
        (
            "host=db user=svc password = SecretB3 dbname=app",
            "SecretB3",
        ),
        (r"host=db password='it\'s' user=u", "it"),
        (
            "postgres://svc@db/app?password=SecretC2&sslmode=disable",
            "SecretC2",
        ),
        (
            "postgres://svc:SecretD@db:5432/app?password=SecretE",
            "Secret",
        ),
        ("host=db password='unterminated", "unterminated"),
    ] {
        let out = redact_url(url);
        assert!(!out.contains(must_hide), "{url} -> {out}");
    }
    assert_eq!(
        redact_url("host=db user=svc password = x dbname=app"),
        "host=db user=svc password=<redacted> dbname=app"
    );
    assert_eq!(
        redact_url("postgres://svc@db/app?password=x&sslmode=disable"),
        "postgres://svc@db/app?password=<redacted>&sslmode=disable"
    );
}

#[test]
fn a_secret_of_the_wrong_type_is_not_echoed() {
    let text = "[auth]\nmethod = \"md5\"\n[[auth.users]]\nname = \"a\"\npassword = 73914628\n";
    let e = load(text, &[]).unwrap_err().to_string();
    assert!(e.starts_with("auth.users[0].password"), "{e}");
    assert!(!e.contains("73914628"), "{e}");
}

#[test]
fn engine_tables_are_checked() {
    let c = load(
        "[[engine.tables]]\nname = \"sales\"\npath = \"/data/sales.csv\"\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.engine.tables[0].format(), Some(FileFormat::Csv));
    let e = load(
        "[[engine.tables]]\nname = \"Bad Name\"\npath = \"x.csv\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("engine.tables[0].name"), "{e}");
    let e = load(
        "[[engine.tables]]\nname = \"t\"\npath = \"x.parquet\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("engine.tables[0].format"), "{e}");
    let e = load("[auth]\nmethod = \"upstream\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("auth.method"), "{e}");
}

#[test]
fn the_builtin_translator_and_measures_are_checked() {
    // The builtin needs no model; a model provider still does.
    let c = load("[[nl.providers]]\nkind = \"builtin\"\n", &[]).unwrap();
    assert_eq!(c.nl.providers[0].kind, helios_nl::ProviderKind::Builtin);
    let e = load(
        "[[nl.providers]]\nkind = \"builtin\"\n[[nl.providers]]\nkind = \"builtin\"\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("nl.providers[1]"), "{e}");
    let e = load("[[nl.providers]]\nkind = \"openai\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("nl.providers[0].model"), "{e}");
    // A measure is one expression over table.column references.
    let ok = "[[nl.measures]]\nname = \"revenue\"\nsql = \"sum(order_items.quantity * order_items.unit_price)\"\n";
    assert_eq!(load(ok, &[]).unwrap().nl.measures[0].name, "revenue");
    for bad in ["sum(quantity", "sum(quantity)", "1; drop table t"] {
        let e = load(
            &format!("[[nl.measures]]\nname = \"m\"\nsql = \"{bad}\"\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("nl.measures[0].sql"), "{bad}: {e}");
    }
}
