//! [`TestServer`]: the real server, run in this process by `hindsight_server::run` on a port of its
//! own and a fresh data directory, shut down through the same future the binary uses for signals.

use std::net::SocketAddr;

use anyhow::Context;
use automerge::Automerge;
use hindsight_server::Config;
use hindsight_server::store::Store;
use hindsight_shared::ids::DocumentId;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::http::{self, BoardCreated};
use crate::within;

/// A server running in this process. Dropping it without [`shutdown`](Self::shutdown) still stops
/// it, but only `shutdown` checks that it stopped cleanly.
pub struct TestServer {
    address: SocketAddr,
    config: Config,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// Kept so the data directory lives exactly as long as the server (taken by [`Self::stop`]).
    data_dir: Option<TempDir>,
}

/// A server that was stopped cleanly, with its address and data directory kept for a restart.
pub struct StoppedServer {
    address: SocketAddr,
    config: Config,
    data_dir: TempDir,
}

impl StoppedServer {
    /// The data directory the server stored everything in.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// A document as the server stored it (snapshot and changes), read with the server's own
    /// store.
    pub async fn stored_document(&self, doc: DocumentId) -> anyhow::Result<Automerge> {
        let store = Store::open(self.data_dir.path())?;
        let stored = store.load(doc).await;
        store.close().await;
        let stored = stored?.with_context(|| format!("{doc} is not stored"))?;
        let mut document =
            if stored.snapshot.is_empty() { Automerge::new() } else { Automerge::load(&stored.snapshot)? };
        for change in &stored.changes {
            document.load_incremental(change)?;
        }
        Ok(document)
    }

    /// Starts the server again on the same address and data directory, as a restarted process
    /// would: browsers that were connected find it where they left it.
    pub async fn start_again(self) -> TestServer {
        let listener =
            TcpListener::bind(self.address).await.expect("could not bind the stopped server's address again");
        TestServer::start(self.config, listener, self.data_dir)
    }
}

impl TestServer {
    /// A server with the default configuration.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A server whose configuration `configure` may change first (the data directory is set).
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("could not create a data directory");
        let mut config = Config::with_data_dir(data_dir.path());
        configure(&mut config);
        // The socket is bound before the server starts, so clients may connect at once: their
        // connections wait in the backlog until the server accepts them.
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("could not bind 127.0.0.1:0");
        Self::start(config, listener, data_dir)
    }

    fn start(config: Config, listener: TcpListener, data_dir: TempDir) -> Self {
        let address = listener.local_addr().expect("a bound listener has an address");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hindsight_server::run(config.clone(), listener, shutdown.clone().cancelled_owned()));
        Self { address, config, shutdown, task: Some(task), data_dir: Some(data_dir) }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The WebSocket endpoint, `ws://127.0.0.1:PORT/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.as_ref().expect("a running server has its data directory").path()
    }

    /// Creates a board through the HTTP API.
    pub async fn create_board(&self, title: &str, template: &str) -> BoardCreated {
        http::create_board(&self.http_url(), title, template).await.expect("could not create a board")
    }

    /// Resolves the shutdown future and waits for `run` to return, which must be `Ok`.
    pub async fn shutdown(self) {
        self.stop().await;
    }

    /// Shuts down cleanly (as [`shutdown`](Self::shutdown)) but keeps the address and the data
    /// directory, to [`start_again`](StoppedServer::start_again).
    pub async fn stop(mut self) -> StoppedServer {
        self.stop_task().await;
        StoppedServer {
            address: self.address,
            config: self.config.clone(),
            data_dir: self.data_dir.take().expect("the data directory is taken only here"),
        }
    }

    async fn stop_task(&mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("the server task is taken only here");
        let result = within("the server to shut down", async { Ok(task.await?) }).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the server's run() failed: {e:#}"),
            Err(e) => panic!("{e:#}"),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl crate::Endpoint for TestServer {
    fn http_url(&self) -> String {
        TestServer::http_url(self)
    }

    fn ws_url(&self) -> String {
        TestServer::ws_url(self)
    }
}
