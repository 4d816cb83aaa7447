//! Log output through `tracing`: human-readable text or JSON lines, with a
//! level a reload can change.

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Changes the running filter (`log.level` on reload).
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// Install the global subscriber. `RUST_LOG`, when set, overrides `log.level`.
pub fn init(cfg: &LogConfig) -> anyhow::Result<()> {
    let filter = match env_override() {
        Some(f) => filter(&f),
        None => filter(&cfg.level),
    }
    .map_err(|e| anyhow::anyhow!("log.level: {e}"))?;
    // Colours only on a terminal: a log file or a pipe gets plain text
    // that grep and log shippers read as written.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match cfg.format {
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = SET_FILTER.set(Box::new(move |f| {
                handle.reload(f).map_err(|e| e.to_string())
            }));
            builder.try_init()
        }
        LogFormat::Json => {
            let builder = builder.json().flatten_event(true).with_filter_reloading();
            let handle = builder.reload_handle();
            let _ = SET_FILTER.set(Box::new(move |f| {
                handle.reload(f).map_err(|e| e.to_string())
            }));
            builder.try_init()
        }
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// Libraries whose debug output quotes statement texts (sqlparser logs
/// every statement it parses, DataFusion its plans, literals and all: a
/// password in `ALTER ROLE ... PASSWORD '...'` would reach the log). They
/// log at INFO at most unless the filter names them itself.
const QUOTE_STATEMENTS: &[&str] = &[
    "sqlparser",
    "datafusion",
    "datafusion_sql",
    "datafusion_optimizer",
    "datafusion_physical_plan",
    "datafusion_physical_optimizer",
    "datafusion_expr",
];

fn filter(spec: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut f = EnvFilter::try_new(spec)?;
    for target in QUOTE_STATEMENTS {
        if !spec.contains(target) {
            f = f.add_directive(format!("{target}=info").parse()?);
        }
    }
    Ok(f)
}

fn env_override() -> Option<String> {
    std::env::var("RUST_LOG").ok().filter(|f| !f.is_empty())
}

/// Apply a reloaded `log.level` (unless `RUST_LOG` rules, or no logger
/// was installed by [`init`]).
pub fn set_level(level: &str) -> Result<(), String> {
    let filter = filter(level).map_err(|e| format!("log.level: {e}"))?;
    if env_override().is_some() {
        return Ok(());
    }
    match SET_FILTER.get() {
        Some(set) => set(filter),
        None => Ok(()),
    }
}
