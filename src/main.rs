use std::process::ExitCode;

use clap::Parser;
use helios::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => match cli.load_config(file.as_deref()) {
            Ok(config) => {
                print!("{}", config.to_redacted_toml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("helios: invalid configuration: {e}");
                ExitCode::from(2)
            }
        },
        Some(Command::InstallInvalidation) => match install_invalidation(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("helios: {e:#}");
                ExitCode::FAILURE
            }
        },
        None => match run(&cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("helios: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = cli
        .load_config(None)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    helios::logging::init(&config.log)?;
    let server = helios::server::Server::new(config)?;
    let cli = cli.clone();
    server.set_loader(Box::new(move || cli.load_config(None)));
    server.serve(shutdown_signal())
}

fn install_invalidation(cli: &Cli) -> anyhow::Result<()> {
    let config = cli
        .load_config(None)
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    helios::logging::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let done = runtime.block_on(helios::cache::install::install(&config))?;
    println!(
        "installed invalidation triggers on {} table{} in database \"{}\" (channel \"{}\")",
        done.tables,
        if done.tables == 1 { "" } else { "s" },
        done.database,
        config.cache.notify_channel
    );
    if done.ddl_trigger {
        println!(
            "DDL event trigger installed: schema changes are notified, new tables get the trigger"
        );
    } else {
        println!("no DDL event trigger (needs a superuser): DDL made elsewhere is covered by cache.ttl only, and new tables need this command again");
    }
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}
