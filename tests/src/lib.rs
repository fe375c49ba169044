//! The end-to-end test harness: real Hindsight servers, reached over real sockets, by clients
//! that speak the automerge-repo protocol byte for byte.
//!
//! # Layout
//! - [`server`]: [`TestServer`], the server in this process on a port of its own, with a fresh
//!   data directory.
//! - [`cluster`]: [`ClusterUnderTest`](cluster::ClusterUnderTest), cluster mode as an operator runs
//!   it: Postgres, NATS and several `hindsight` processes.
//! - [`nats`]: [`Nats`](nats::Nats), a real NATS server started by a test, for cluster mode.
//! - [`process`]: [`ServerProcess`], the `hindsight` binary as a child process, for restarts,
//!   signals and watching its logs.
//! - [`bomb`]: decompression bombs, Automerge changes of a few bytes that declare millions of
//!   operations.
//! - [`browser`]: [`Browser`](browser::Browser), headless Chromium through chromedriver, and
//!   [`Page`](browser::Page), the gestures of a participant on a board page.
//! - [`http`]: a tiny HTTP/1.1 client, enough for the JSON API and the pages.
//! - [`ws`]: [`WsClient`], one raw protocol connection: join, send any frame, receive messages,
//!   see how the server closed it.
//! - [`peer`]: [`SyncPeer`], one connection syncing replicas of documents the way a browser does,
//!   recovering from refused changes as the browser does, and keeping every frame and notice it
//!   received. A peer with only the board open is a viewer.
//! - [`participant`]: [`Participant`], someone who joined: a desk and the board over one
//!   connection, with typed helpers for every gesture of a retro and raw changes for the rest.
//! - [`proxy`]: [`FaultyProxy`], a TCP proxy that cuts live connections at random and counts
//!   the faults it injected.
//! - [`team`]: teams over the API, and [`TeamPage`](team::TeamPage), a connection syncing a
//!   team's ledger as the team page does.
//! - [`rng`]: [`Rng`], a seeded generator for load and fault schedules.
//! - [`watch`]: watchers of a server under attack: its memory, its health check.
//! - [`history`]: reading a document's whole history (every operation, its path and value) and
//!   searching received frames, for privacy assertions.
//!
//! Every wait is bounded by a timeout that turns into a test failure naming what was awaited;
//! nothing sleeps to let the server catch up.

pub mod bomb;
pub mod browser;
pub mod cluster;
pub mod history;
pub mod http;
pub mod nats;
pub mod participant;
pub mod peer;
pub mod postgres;
pub mod process;
pub mod proxy;
pub mod rng;
pub mod server;
pub mod team;
pub mod watch;
pub mod ws;

use std::time::Duration;

pub use http::{BoardCreated, HttpResponse};
pub use participant::{Identity, Participant};
pub use peer::{ChangeOptions, SyncPeer, Verdict};
pub use process::ServerProcess;
pub use proxy::FaultyProxy;
pub use rng::Rng;
pub use server::TestServer;
pub use ws::{Closing, Joined, WsClient};

/// A running server the harness can reach: [`TestServer`] or [`ServerProcess`].
pub trait Endpoint {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    fn http_url(&self) -> String;
    /// The WebSocket endpoint, `ws://127.0.0.1:PORT/ws`.
    fn ws_url(&self) -> String;
}

/// A reference to an endpoint is one (`&dyn Endpoint` among them: a table's seats on different
/// nodes).
impl<T: Endpoint + ?Sized> Endpoint for &T {
    fn http_url(&self) -> String {
        (**self).http_url()
    }

    fn ws_url(&self) -> String {
        (**self).ws_url()
    }
}

/// The longest any single wait (one message, one HTTP answer, one start-up) may take before the
/// test fails. Generous, because two cores may be busy compiling while the tests run.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The median and the 90th percentile (nearest rank) of `values`, for the benchmarks; zeros when
/// there are none.
pub fn percentiles(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
    (rank(0.5), rank(0.9))
}

/// Runs `future` with the harness's [`TIMEOUT`], failing with `what` when time runs out.
pub async fn within<T>(what: &str, future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => anyhow::bail!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}
