//! `helios install-invalidation`: the triggers behind
//! `cache.invalidation = "notify"`.
//!
//! In the upstream database, schema `helios` gets a trigger function that
//! `pg_notify`s the changed table's name on the configured channel; every
//! ordinary and partitioned table outside the system schemas gets an
//! `AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ... FOR EACH STATEMENT`
//! trigger calling it. Notifications are transactional: they are delivered
//! when (and only if) the writing transaction commits.
//!
//! With superuser rights, an event trigger also notifies `*` after any DDL
//! (Helios then retires everything cached for the database) and puts the
//! trigger on tables created later. Without them, that part is skipped and
//! said so: DDL made elsewhere is then only covered by the TTL.
//!
//! Running it again is harmless (everything is `CREATE OR REPLACE`).

use std::time::Duration;

use anyhow::Context;
use helios_wire::StartupParams;

use crate::config::Config;
use crate::upstream::{UpstreamConn, UpstreamTarget};

/// What was installed.
#[derive(Debug)]
pub struct Installed {
    pub database: String,
    pub tables: usize,
    /// Whether the DDL event trigger could be created.
    pub ddl_trigger: bool,
}

fn functions_sql(channel: &str) -> String {
    format!(
        "CREATE SCHEMA IF NOT EXISTS helios;
CREATE OR REPLACE FUNCTION helios.notify_change() RETURNS trigger LANGUAGE plpgsql AS $helios$
BEGIN
  PERFORM pg_catalog.pg_notify('{channel}', TG_TABLE_NAME);
  RETURN NULL;
END
$helios$;
CREATE OR REPLACE FUNCTION helios.watch_table(t regclass) RETURNS void LANGUAGE plpgsql AS $helios$
BEGIN
  EXECUTE pg_catalog.format(
    'CREATE OR REPLACE TRIGGER helios_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s '
    'FOR EACH STATEMENT EXECUTE FUNCTION helios.notify_change()', t);
END
$helios$;"
    )
}

/// Tables to watch: ordinary (partitions included: a write straight into a
/// partition fires only its own triggers) and partitioned, outside the
/// system schemas and Helios's own.
const WATCH_ALL: &str = "SELECT pg_catalog.count(helios.watch_table(c.oid::regclass))::text \
   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
  WHERE c.relkind IN ('r', 'p') AND c.relpersistence IN ('p', 'u') \
    AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'helios') \
    AND n.nspname NOT LIKE 'pg\\_%'";

fn event_trigger_sql(channel: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION helios.notify_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $helios$
DECLARE r record;
BEGIN
  FOR r IN SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands()
            WHERE command_tag IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO')
              AND object_type = 'table' LOOP
    PERFORM helios.watch_table(r.objid::regclass);
  END LOOP;
  PERFORM pg_catalog.pg_notify('{channel}', '*');
END
$helios$;
DROP EVENT TRIGGER IF EXISTS helios_ddl;
CREATE EVENT TRIGGER helios_ddl ON ddl_command_end EXECUTE FUNCTION helios.notify_ddl();"
    )
}

/// Install into the upstream database the configuration names, as the
/// upstream URL's user.
pub async fn install(config: &Config) -> anyhow::Result<Installed> {
    let url = config
        .upstream
        .url
        .as_deref()
        .context("no upstream configured: pass --upstream or set upstream.url")?;
    let target = UpstreamTarget::from_config(url, &config.upstream)
        .map_err(|m| anyhow::anyhow!("upstream.url: {m}"))?;
    let user = target
        .service_user
        .clone()
        .context("the upstream URL names no user (postgres://user@host/db)")?;
    let database = target
        .service_database
        .clone()
        .unwrap_or_else(|| user.clone());
    let mut params = StartupParams::new();
    params.set("user", user.as_str());
    params.set("database", database.as_str());
    params.set("application_name", "helios install-invalidation");
    let mut conn = UpstreamConn::connect(&target, &params, target.service_password.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let limit = Duration::from_secs(300);
    let channel = &config.cache.notify_channel;
    conn.run_control_query(&functions_sql(channel), limit)
        .await
        .context("creating the trigger functions")?;
    let tables = count_query(&mut conn, WATCH_ALL, limit)
        .await
        .context("creating the triggers")?;
    let ddl_trigger = match conn
        .run_control_query(&event_trigger_sql(channel), limit)
        .await
    {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "no DDL event trigger (it needs a superuser): DDL made elsewhere is covered by cache.ttl only");
            false
        }
    };
    conn.terminate().await;
    Ok(Installed {
        database,
        tables,
        ddl_trigger,
    })
}

/// Run a one-value query with the simple protocol and read the value.
async fn count_query(conn: &mut UpstreamConn, sql: &str, limit: Duration) -> anyhow::Result<usize> {
    use bytes::BytesMut;
    use helios_wire::frame::{read_frame_buffered, tag};
    use tokio::io::AsyncWriteExt;

    let mut out = BytesMut::new();
    helios_wire::messages::query(sql, &mut out);
    let work = async {
        conn.stream.write_all(&out).await?;
        conn.stream.flush().await?;
        let mut value = None;
        let mut error = None;
        loop {
            let f = read_frame_buffered(&mut conn.stream, &mut conn.rbuf, 1 << 20)
                .await?
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            match f.tag {
                tag::DATA_ROW if f.body.len() > 6 => {
                    value = std::str::from_utf8(&f.body[6..])
                        .ok()
                        .and_then(|v| v.parse::<usize>().ok())
                }
                tag::ERROR_RESPONSE => error = Some(helios_wire::ErrorFields::parse(&f.body)),
                tag::READY_FOR_QUERY => break,
                _ => {}
            }
        }
        Ok::<_, std::io::Error>((value, error))
    };
    let (value, error) = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))??;
    if let Some(e) = error {
        anyhow::bail!("{e}");
    }
    Ok(value.unwrap_or(0))
}
