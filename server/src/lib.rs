//! Hindsight's server: an axum/tokio WebSocket hub that syncs board documents with browsers, an
//! HTTP API, and embedded SQLite storage.
//!
//! # Layout
//! - [`config`]: flags and environment variables.
//! - [`server`]: [`run`] — the caller binds the listener and says when to shut down; the accept
//!   loop and housekeeping.
//! - [`http`]: routes: the JSON API, pages, assets, the WebSocket upgrade; security headers.
//! - [`clients`]: per-address limits: connections, board creations, joins.
//! - [`connection`]: one WebSocket: handshake, routing to boards, bounded outbox.
//! - [`closing`]: close codes and reasons, one per cause.
//! - [`budget`]: token buckets for every rate the server bounds.
//! - [`registry`]: which boards are in memory, and (in cluster mode) which node owns a board.
//! - [`cluster`]: cluster mode: leases, forwarding to a board's owner over NATS, failover, drain.
//! - [`board`]: a board's actor and its sans-IO core (document + peer sync states).
//! - [`store`]: storage in SQLite or Postgres with group commit, background compaction, retention
//!   and (in cluster mode) leases with fencing tokens.
//! - [`assets`]: the embedded browser client.
//! - [`key`]: the facilitator key, kept only as its hash.
//! - [`clock`]: the wall clock, read in one place.
//! - [`error`]: the HTTP error type.

pub mod assets;
pub mod board;
pub mod budget;
pub mod clients;
pub mod clock;
pub mod closing;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod error;
pub mod http;
pub mod key;
pub mod registry;
pub mod server;
pub mod store;
pub mod team;

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

async fn serve(mut config: Config) -> anyhow::Result<()> {
    use anyhow::Context;
    fit_open_files(&mut config);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("could not listen on {}", config.listen))?;
    run(config, listener, shutdown_signal()).await
}

/// Raises the process's open-file limit as far as the system allows, and keeps
/// `--max-connections` under it (with room for the database, the listener and HTTP requests), so
/// that a full server refuses WebSockets with 503 instead of failing to accept anything.
fn fit_open_files(config: &mut Config) {
    /// Descriptors kept for everything but WebSockets.
    const RESERVE: u64 = 256;
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-file limit");
            return;
        }
    };
    let room = usize::try_from(limit.saturating_sub(RESERVE)).unwrap_or(usize::MAX).max(1);
    if config.max_connections > room {
        tracing::warn!(
            open_files = limit,
            max_connections = room,
            "the open-file limit allows fewer WebSockets than --max-connections; taking fewer"
        );
        config.max_connections = room;
    }
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
