//! Hindsight's server: an axum/tokio WebSocket hub that syncs board documents with browsers, an
//! HTTP API, and embedded SQLite storage.
//!
//! # Layout
//! - [`config`]: flags and environment variables.
//! - [`server`]: [`run`] — the caller binds the listener and says when to shut down.
//! - [`http`]: routes: the JSON API, pages, assets, the WebSocket upgrade.
//! - [`connection`]: one WebSocket: handshake, routing to boards, bounded outbox.
//! - [`registry`]: which boards are in memory; the seam where a cluster would find a board's owner.
//! - [`board`]: a board's actor and its sans-IO core (document + peer sync states).
//! - [`store`]: SQLite storage with group commit and background compaction.
//! - [`assets`]: the embedded browser client.
//! - [`error`]: the HTTP error type.

pub mod assets;
pub mod board;
pub mod config;
pub mod connection;
pub mod error;
pub mod http;
pub mod registry;
pub mod server;
pub mod store;

use std::process::ExitCode;

use clap::Parser;

pub use config::Config;
pub use server::run;

/// The `hindsight` command: parse flags, set up logging, bind, serve until SIGINT or SIGTERM.
pub fn cli_main() -> ExitCode {
    let config = Config::parse();
    init_tracing(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("hindsight: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("hindsight: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    run(config, listener, shutdown_signal()).await
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match config.log_format {
        config::LogFormat::Text => builder.init(),
        config::LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
