//! The end-to-end test harness: real Hindsight servers, reached over real sockets, by clients
//! that speak the automerge-repo protocol byte for byte.
//!
//! # Layout
//! - [`server`]: [`TestServer`], the server in this process on a port of its own, with a fresh
//!   data directory.
//! - [`process`]: [`ServerProcess`], the `hindsight` binary as a child process, for restarts,
//!   signals and watching its logs.
//! - [`browser`]: [`Browser`](browser::Browser), headless Chromium through chromedriver, and
//!   [`Page`](browser::Page), the gestures of a participant on a board page.
//! - [`http`]: a tiny HTTP/1.1 client, enough for the JSON API and the pages.
//! - [`ws`]: [`WsClient`], one raw protocol connection: join, send any frame, receive messages,
//!   see how the server closed it.
//! - [`peer`]: [`SyncPeer`], a board replica that syncs over a [`WsClient`] the way a browser does.
//!
//! Every wait is bounded by a timeout that turns into a test failure naming what was awaited;
//! nothing sleeps to let the server catch up.

pub mod browser;
pub mod http;
pub mod peer;
pub mod process;
pub mod server;
pub mod ws;

use std::time::Duration;

pub use http::{BoardCreated, HttpResponse};
pub use peer::SyncPeer;
pub use process::ServerProcess;
pub use server::TestServer;
pub use ws::{Closing, WsClient};

/// The longest any single wait (one message, one HTTP answer, one start-up) may take before the
/// test fails. Generous, because two cores may be busy compiling while the tests run.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `future` with the harness's [`TIMEOUT`], failing with `what` when time runs out.
pub async fn within<T>(what: &str, future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    match tokio::time::timeout(TIMEOUT, future).await {
        Ok(result) => result,
        Err(_) => anyhow::bail!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}
