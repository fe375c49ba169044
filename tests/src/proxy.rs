//! [`FaultyProxy`]: a TCP proxy between clients and a server that cuts live connections at
//! random, as a flaky network does. A cut drops both halves of a connection at once with a reset
//! (`SO_LINGER` 0), wherever the bytes in flight happen to be: between frames or in the middle of
//! one, in either direction. The proxy counts the faults it injected. It can also freeze: hold
//! every byte without closing anything, as a network that died in silence does.
//!
//! It forwards bytes and nothing else, so clients reach it exactly as they would reach the server:
//! it implements [`Endpoint`] with its own address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::Endpoint;
use crate::rng::Rng;

/// A proxy on `127.0.0.1:0` in front of one server. Stops when dropped.
pub struct FaultyProxy {
    address: SocketAddr,
    shared: Arc<Shared>,
    acceptor: JoinHandle<()>,
    /// The task cutting connections on a random schedule, while one runs.
    chaos: Option<(CancellationToken, JoinHandle<()>)>,
}

/// What the acceptor, the connections and the chaos task share.
struct Shared {
    /// Live connections, by the order they were accepted: a token that cuts each.
    live: Mutex<BTreeMap<u64, CancellationToken>>,
    accepted: AtomicU64,
    faults: AtomicU64,
    /// True while no byte may cross.
    frozen: watch::Sender<bool>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            live: Mutex::default(),
            accepted: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            frozen: watch::channel(false).0,
        }
    }
}

impl Shared {
    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Cuts the live connection at position `pick` (modulo how many there are); false if none is.
    fn cut(&self, pick: u64) -> bool {
        let live = self.live();
        if live.is_empty() {
            return false;
        }
        let at = (pick % live.len() as u64) as usize;
        let Some(token) = live.values().nth(at) else { return false };
        token.cancel();
        self.faults.fetch_add(1, Ordering::Relaxed);
        true
    }
}

impl FaultyProxy {
    /// Starts a proxy that forwards every connection to `server`.
    pub async fn start(server: &impl Endpoint) -> anyhow::Result<Self> {
        let url = server.http_url();
        let upstream: SocketAddr = url
            .strip_prefix("http://")
            .and_then(|rest| rest.parse().ok())
            .with_context(|| format!("`{url}` is not http://IP:PORT"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await.context("could not bind the proxy")?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let acceptor = tokio::spawn(accept(listener, upstream, Arc::clone(&shared)));
        Ok(Self { address, shared, acceptor, chaos: None })
    }

    /// Cuts one live connection, chosen by `pick` (modulo how many there are). False if none was live.
    pub fn cut(&self, pick: u64) -> bool {
        self.shared.cut(pick)
    }

    /// Cuts a random live connection after each random pause in `every`, until
    /// [`stop_cutting`](Self::stop_cutting). The schedule and the choices follow from `seed`.
    pub fn start_cutting(&mut self, every: Range<Duration>, seed: u64) {
        self.stop_cutting();
        let token = CancellationToken::new();
        let shared = Arc::clone(&self.shared);
        let stop = token.clone();
        let task = tokio::spawn(async move {
            let mut rng = Rng::new(seed);
            let span = every.end.saturating_sub(every.start).as_millis().max(1) as u64;
            loop {
                let pause = every.start + Duration::from_millis(rng.next_u64() % span);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                shared.cut(rng.next_u64());
            }
        });
        self.chaos = Some((token, task));
    }

    /// Stops the random cuts; connections alive now stay up.
    pub fn stop_cutting(&mut self) {
        if let Some((token, task)) = self.chaos.take() {
            token.cancel();
            task.abort();
        }
    }

    /// Cuts every live connection; returns how many there were.
    pub fn cut_all(&self) -> usize {
        let live = self.shared.live();
        for token in live.values() {
            token.cancel();
        }
        self.shared.faults.fetch_add(live.len() as u64, Ordering::Relaxed);
        live.len()
    }

    /// Holds every byte in both directions until [`thaw`](Self::thaw), as a network that died
    /// without closing anything: connections stay open, new ones are accepted, nothing crosses.
    pub fn freeze(&self) {
        self.shared.frozen.send_replace(true);
    }

    /// Lets bytes cross again, those held first.
    pub fn thaw(&self) {
        self.shared.frozen.send_replace(false);
    }

    /// How many connections were cut.
    pub fn faults(&self) -> u64 {
        self.shared.faults.load(Ordering::Relaxed)
    }

    /// How many connections the proxy accepted.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// How many connections are open through the proxy now.
    pub fn live(&self) -> usize {
        self.shared.live().len()
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop_cutting();
        self.acceptor.abort();
        for token in self.shared.live().values() {
            token.cancel();
        }
    }
}

impl Endpoint for FaultyProxy {
    fn http_url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.address)
    }
}

async fn accept(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        let id = shared.accepted.fetch_add(1, Ordering::Relaxed);
        let cut = CancellationToken::new();
        shared.live().insert(id, cut.clone());
        let shared = Arc::clone(&shared);
        let frozen = shared.frozen.subscribe();
        tokio::spawn(async move {
            pipe(client, upstream, cut, frozen).await;
            shared.live().remove(&id);
        });
    }
}

/// Forwards bytes both ways until both sides end, or until `cut`, which resets both sides.
async fn pipe(mut client: TcpStream, upstream: SocketAddr, cut: CancellationToken, frozen: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    // Like the browser and the server: no Nagle delay, so frames cross the proxy as they were sent.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.split();
    let (server_read, server_write) = server.split();
    let both_ways = async {
        tokio::join!(forward(client_read, server_write, frozen.clone()), forward(server_read, client_write, frozen))
    };
    tokio::select! {
        _ = both_ways => {}
        () = cut.cancelled() => {
            // Closing with a zero linger sends a reset and discards whatever was not sent yet.
            let _ = client.set_zero_linger();
            let _ = server.set_zero_linger();
        }
    }
}

/// Copies bytes from `from` to `to` while not frozen, and passes on the end of the stream.
async fn forward(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, mut frozen: watch::Receiver<bool>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        if frozen.wait_for(|frozen| !frozen).await.is_err() {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(read) => read,
        };
        // What was read while the proxy froze waits here until it thaws.
        if frozen.wait_for(|frozen| !frozen).await.is_err() || to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
