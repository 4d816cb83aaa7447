//! TLS between Helios and the upstream: encrypted, verified against a CA,
//! and refused when the certificate or the server does not measure up.

mod common;

use std::path::Path;
use std::process::Command;

use common::{sqlstate, try_connect, Helios, PgServer};

/// A CA and a server certificate for 127.0.0.1/localhost signed by it, made
/// with the openssl command line; the key is readable by `postgres` only.
fn make_certs(dir: &Path, name: &str) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ca = format!("{name}-ca");
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name} test CA"),
        "-keyout",
        &format!("{ca}.key"),
        "-out",
        &format!("{ca}.crt"),
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &format!("{ca}.crt"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    ]);
}

fn pg_with_ssl() -> PgServer {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path(), "good");
    // The key must belong to the server's user and not be readable by others.
    let pg_tmp = PgServer::start();
    let data = pg_tmp.dir.path().join("data");
    for f in ["server.crt", "server.key", "good-ca.crt"] {
        std::fs::copy(certs.path().join(f), data.join(f)).unwrap();
    }
    let conf = "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n";
    let mut auto = std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.auto.conf"))
        .unwrap();
    std::io::Write::write_all(&mut auto, conf.as_bytes()).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "chmod 600 {d}/server.key && (id -u | grep -qx 0 && chown postgres:postgres {d}/server.* {d}/good-ca.crt || true)",
            d = data.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    pg_tmp.kill();
    pg_tmp.restart();
    pg_tmp
}

async fn ssl_in_use(helios: &Helios) -> bool {
    let client = helios.connect().await;
    client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn verify_full_with_the_right_ca_encrypts_the_upstream_connection() {
    let pg = pg_with_ssl();
    let ca = pg.dir.path().join("data/good-ca.crt");
    let helios = Helios::start(
        &pg,
        &format!(
            "tls = \"verify-full\"\ntls_ca_file = \"{}\"\n",
            ca.display()
        ),
    );
    assert!(
        ssl_in_use(&helios).await,
        "the upstream connection is not encrypted"
    );
}

#[tokio::test]
async fn require_encrypts_without_verifying_and_prefer_uses_tls_when_offered() {
    let pg = pg_with_ssl();
    let helios = Helios::start(&pg, "tls = \"require\"\n");
    assert!(ssl_in_use(&helios).await);
    let helios = Helios::start(&pg, "");
    assert!(
        ssl_in_use(&helios).await,
        "prefer (the default) should use TLS"
    );
    let helios = Helios::start(&pg, "tls = \"disable\"\n");
    assert!(!ssl_in_use(&helios).await);
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_with_08001() {
    let pg = pg_with_ssl();
    let other = tempfile::tempdir().unwrap();
    make_certs(other.path(), "other");
    let helios = Helios::start(
        &pg,
        &format!(
            "tls = \"verify-ca\"\ntls_ca_file = \"{}\"\n",
            other.path().join("other-ca.crt").display()
        ),
    );
    let Err(err) = try_connect(&helios.conn_str("postgres")).await else {
        panic!("connected through an unverified upstream")
    };
    assert_eq!(sqlstate(&err).as_deref(), Some("08001"), "{err}");
    let msg = err.as_db_error().unwrap().message().to_string();
    assert!(
        msg.contains(&format!("127.0.0.1:{}", pg.port)) && msg.contains("TLS handshake failed"),
        "{msg}"
    );
}

#[tokio::test]
async fn require_against_a_server_without_tls_is_refused_with_08001() {
    let pg = PgServer::start();
    let helios = Helios::start(&pg, "tls = \"require\"\n");
    let Err(err) = try_connect(&helios.conn_str("postgres")).await else {
        panic!("connected without TLS")
    };
    assert_eq!(sqlstate(&err).as_deref(), Some("08001"), "{err}");
    let msg = err.as_db_error().unwrap().message().to_string();
    assert!(msg.contains("does not support TLS"), "{msg}");
}
