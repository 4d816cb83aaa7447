//! Helios's own login to a password-protected upstream.

use crate::common::{Helios, PgServer};
use crate::support::{
    assert_password_failed, current_user, login, postgres_log, refused, require_passwords,
};

// ------------------------------------------- Helios's own upstream login

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helios_logs_into_a_password_protected_upstream_with_the_configured_passwords() {
    let pg = PgServer::start();
    pg.psql("create role alice login password 'alice-pw'"); // SCRAM-stored
    pg.psql("create role bob login password 'bob-upstream'");
    pg.psql("create role carl login password 'carl-upstream'");
    pg.psql("set password_encryption = 'md5'; create role dave login password 'dave-pw'"); // md5-stored
    pg.psql("create role frank login password 'frank-pw'");
    // hba "md5": md5 for md5-stored passwords, SCRAM for SCRAM-stored ones.
    require_passwords(&pg, "md5", "alice");

    // Clients checked with md5; Helios logs in upstream with the password.
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"md5\"\n\
         [[auth.users]]\nname = \"alice\"\npassword = \"alice-pw\"\n\
         [[auth.users]]\nname = \"bob\"\npassword = \"bob-client\"\nupstream_password = \"bob-upstream\"\n\
         [[auth.users]]\nname = \"carl\"\npassword = \"carl-client\"\n\
         [[auth.users]]\nname = \"dave\"\npassword = \"dave-pw\"\n",
    );
    for (user, pw) in [
        ("alice", "alice-pw"),
        ("bob", "bob-client"),
        ("dave", "dave-pw"),
    ] {
        let c = login(&h, user, Some(pw)).await;
        assert_eq!(current_user(&c).await, user);
    }
    // bob's client password is not his upstream password, nor the reverse.
    assert_password_failed(&refused(&h, "bob", Some("bob-upstream")).await, "bob");
    // carl gets past Helios, but the upstream refuses Helios's password for
    // him: its own error, passed on.
    let e = refused(&h, "carl", Some("carl-client")).await;
    assert_password_failed(&e, "carl");
    assert!(
        postgres_log(&pg).contains("password authentication failed for user \"carl\""),
        "the refusal should have come from the upstream"
    );
    drop(h);

    // Clients trusted; Helios logs in with upstream_password where it has one.
    let h = Helios::start(
        &pg,
        "[auth]\nmethod = \"trust\"\n\
         [[auth.users]]\nname = \"bob\"\nupstream_password = \"bob-upstream\"\n\
         [[auth.users]]\nname = \"dave\"\nupstream_password = \"dave-pw\"\n\
         [[auth.users]]\nname = \"carl\"\nupstream_password = \"wrong\"\n",
    );
    for user in ["bob", "dave"] {
        let c = login(&h, user, None).await;
        assert_eq!(current_user(&c).await, user);
    }
    assert_password_failed(&refused(&h, "carl", None).await, "carl");
    // frank: no password anywhere in Helios; the upstream wants one.
    let e = refused(&h, "frank", None).await;
    assert_eq!(e.severity(), "FATAL", "{e:?}");
    assert_eq!(e.code().code(), "28P01", "{e:?}");
    // A password the client sends is not used with method = "trust".
    let e = refused(&h, "frank", Some("frank-pw")).await;
    assert_eq!(e.code().code(), "28P01", "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_urls_password_is_used_for_the_urls_own_user_only() {
    let pg = PgServer::start();
    pg.psql("create role svc login password 'svc-pw'");
    pg.psql("create role alice login password 'svc-pw'");
    require_passwords(&pg, "scram-sha-256", "svc");
    let h = Helios::start_config(&format!(
        "[upstream]\nurl = \"postgres://svc:svc-pw@127.0.0.1:{}/postgres\"\nconnect_retries = 0\n",
        pg.port
    ));
    let c = login(&h, "svc", None).await;
    assert_eq!(current_user(&c).await, "svc");
    let e = refused(&h, "alice", None).await;
    assert_eq!(e.code().code(), "28P01", "{e:?}");
}
