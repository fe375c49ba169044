//! Cluster mode (`--nats-url`): many nodes on one Postgres database, each board owned by one
//! node at a time, clients connected to any node.
//!
//! - [`wire`]: the subjects and envelopes nodes exchange over NATS.
//! - [`route`]: the side of the node that holds a client's socket: a board owned elsewhere is a
//!   route, a [`BoardHandle`] whose messages travel to the owner; the owner's frames come back.
//! - [`proxy`]: the owner's side: a forwarded connection is a local peer of the board, its
//!   frames published back to the node that holds the socket.
//! - [`http`]: HTTP calls about a board (join, claim, export, alerts, team calls) forwarded to
//!   the owner whole.
//!
//! This file holds the node's leases ([`Lease`], taken by [`Cluster::locate`], renewed here,
//! released when the node no longer holds any board under them or when it drains), and the
//! watch that notices an owner gone and takes its boards over.
//!
//! Invariants: a node acts on a board only while it holds the board's lease (checked before each
//! turn, fenced at each write); a node never forwards to itself; what a forwarded connection may
//! do is decided by the owner exactly as for its own connections (the origin only checks the
//! protocol's envelope and its rates, as for any connection).
//!
//! Locking: every map here is a `DashMap`; no guard is held across an `.await` (each access
//! clones what it needs out of the map first).

pub mod http;
pub mod proxy;
pub mod route;
pub mod wire;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use dashmap::DashMap;
use hindsight_shared::ids::DocumentId;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::board::BoardHandle;
use crate::registry::Registry;
use crate::store::{Holder, Lease, LeaseAnswer, LeaseOp, Store, StoreError};

/// Where a board is served.
#[derive(Debug, Clone)]
pub enum Located {
    /// This node holds the board's lease.
    Here(Arc<Lease>),
    /// Another node does.
    There(String),
    /// There is no such board: nobody owns it, this node answers that it does not exist.
    Nowhere,
}

/// What the cluster has done since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct ClusterStats {
    pub frames_forwarded: AtomicU64,
    pub frames_returned: AtomicU64,
    pub http_forwarded: AtomicU64,
    pub lease_renewals: AtomicU64,
    pub leases_taken: AtomicU64,
    pub leases_lost: AtomicU64,
    /// Boards this node took over from an owner that was gone (or handed them over).
    pub failovers: AtomicU64,
}

/// This node's part of the cluster.
pub struct Cluster {
    node: Arc<str>,
    nats: async_nats::Client,
    store: Store,
    ttl: Duration,
    origin: Instant,
    /// Lease key -> the lease this node holds on it.
    held: DashMap<DocumentId, Arc<Lease>>,
    /// Lease keys this node holds with no board of theirs in memory, seen at the last renewal:
    /// released at the next if still unused.
    unused: DashMap<DocumentId, ()>,
    /// Board (or team) -> its lease key: the team for a team's board, else itself. Never stale:
    /// a board never changes team.
    keys: DashMap<DocumentId, DocumentId>,
    pub(crate) routes: route::Routes,
    proxies: proxy::Proxies,
    registry: OnceLock<Weak<Registry>>,
    /// The largest body one NATS message carries here.
    max_part: usize,
    pub stats: ClusterStats,
    /// Set while the node drains: its boards are being handed over.
    draining: CancellationToken,
    /// The server's shutdown.
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Cluster {
    /// Connects to NATS at `url` as node `node`, with leases of `ttl` on `store`'s database.
    /// Never logs `url`.
    pub async fn connect(
        url: &str,
        node: String,
        ttl: Duration,
        store: Store,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(wire::valid_node_id(&node), "a node id is 1 to 64 letters, digits, `-` or `_`");
        let options = async_nats::ConnectOptions::new()
            .name(format!("hindsight-{node}"))
            .connection_timeout(Duration::from_secs(5))
            // Subscriptions buffer this many messages before NATS drops this node as slow.
            .subscription_capacity(16 * 1024);
        let nats = async_nats::connect_with_options(url, options).await.context("could not connect to NATS")?;
        let max_payload = nats.server_info().max_payload;
        // Headers ride in the same message: leave them room.
        let max_part = max_payload.saturating_sub(4096).max(16 * 1024);
        Ok(Arc::new(Self {
            node: node.into(),
            nats,
            store,
            ttl,
            origin: Instant::now(),
            held: DashMap::new(),
            unused: DashMap::new(),
            keys: DashMap::new(),
            routes: route::Routes::default(),
            proxies: proxy::Proxies::default(),
            registry: OnceLock::new(),
            max_part,
            stats: ClusterStats::default(),
            draining: CancellationToken::new(),
            shutdown,
        }))
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// True while this node reaches NATS.
    pub fn connected(&self) -> bool {
        self.nats.connection_state() == async_nats::connection::State::Connected
    }

    /// How many lease keys (boards, or teams with their boards) this node owns now.
    pub fn owned(&self) -> usize {
        self.held.iter().filter(|lease| lease.valid()).count()
    }

    fn registry(&self) -> Option<Arc<Registry>> {
        self.registry.get().and_then(Weak::upgrade)
    }

    /// The key a board's lease is held under: its team's id if it has one (a team's boards
    /// live with the team's ledger on one node, so what a board tells its team never crosses
    /// nodes), else its own; `None` if there is no such board or team.
    async fn key_of(&self, board: DocumentId) -> Result<Option<DocumentId>, StoreError> {
        if let Some(key) = self.keys.get(&board) {
            return Ok(Some(*key));
        }
        let Some(record) = self.store.board(board).await? else { return Ok(None) };
        let key = record.team.unwrap_or(board);
        self.keys.insert(board, key);
        Ok(Some(key))
    }

    /// The lease this node holds on `board`'s key, if it holds it now.
    pub fn lease_of(&self, board: DocumentId) -> Option<Arc<Lease>> {
        let key = *self.keys.get(&board)?;
        self.held.get(&key).map(|lease| Arc::clone(&lease)).filter(|lease| lease.valid())
    }

    /// Finds who serves `board`, taking its lease if nobody holds it.
    pub async fn locate(&self, board: DocumentId) -> Result<Located, StoreError> {
        let Some(key) = self.key_of(board).await? else { return Ok(Located::Nowhere) };
        if let Some(lease) = self.held.get(&key).map(|l| Arc::clone(&l)).filter(|l| l.valid()) {
            return Ok(Located::Here(lease));
        }
        if self.draining.is_cancelled() {
            // A draining node takes nothing new; its own clients are leaving anyway.
            return Err(StoreError::Stopped);
        }
        let asked = Instant::now();
        let op = LeaseOp::Take { key, node: self.node.to_string(), ttl: self.ttl };
        let LeaseAnswer::Holders(holders) = self.store.lease(op).await? else { return Err(StoreError::Stopped) };
        let Some(holder) = holders.into_iter().find(|h| h.key == key) else { return Err(StoreError::Stopped) };
        if holder.node != *self.node || !holder.live {
            return Ok(Located::There(holder.node));
        }
        let lease = self.hold(key, holder.epoch, asked);
        Ok(Located::Here(lease))
    }

    /// Records a lease taken (or found ours) at `epoch`.
    fn hold(&self, key: DocumentId, epoch: i64, asked: Instant) -> Arc<Lease> {
        let mut entry = self.held.entry(key).or_insert_with(|| {
            self.stats.leases_taken.fetch_add(1, Ordering::Relaxed);
            tracing::info!(key = %key.tag(), epoch, "took a board's lease");
            Arc::new(Lease::new(key, Arc::clone(&self.node), epoch, self.origin, asked, self.ttl))
        });
        if entry.epoch == epoch {
            entry.renewed(asked, self.ttl);
        } else {
            // The old lease was lost: whatever acted on it has stopped or will be fenced.
            entry.lose();
            self.stats.leases_taken.fetch_add(1, Ordering::Relaxed);
            *entry = Arc::new(Lease::new(key, Arc::clone(&self.node), epoch, self.origin, asked, self.ttl));
        }
        self.unused.remove(&key);
        Arc::clone(&entry)
    }

    /// Starts the node's part: the subscriptions, the lease renewal and the owner watch.
    pub async fn start(
        self: &Arc<Self>,
        registry: &Arc<Registry>,
        app: axum::Router,
        tracker: &TaskTracker,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let _ = self.registry.set(Arc::downgrade(registry));
        let owner = self.nats.subscribe(wire::node_subject(&self.node)).await?;
        let origin = self.nats.subscribe(wire::conn_subject(&self.node)).await?;
        let calls = self.nats.subscribe(wire::http_subject(&self.node)).await?;
        let pings = self.nats.subscribe(wire::ping_subject(&self.node)).await?;
        tracker.spawn(proxy::serve(Arc::clone(self), owner, tracker.clone(), shutdown.clone()));
        tracker.spawn(route::serve(Arc::clone(self), origin, shutdown.clone()));
        tracker.spawn(http::serve(Arc::clone(self), calls, app, shutdown.clone()));
        tracker.spawn(answer_pings(self.nats.clone(), pings, shutdown.clone()));
        tracker.spawn(Arc::clone(self).keep_leases(shutdown.clone()));
        tracker.spawn(Arc::clone(self).watch_owners(shutdown.clone()));
        tracker.spawn(proxy::forget_gone_origins(Arc::clone(self), shutdown));
        tracing::info!(node = %self.node, lease_ms = self.ttl.as_millis() as u64, "joined the cluster");
        Ok(())
    }

    /// Renews this node's leases a few times per lease time; loses those the database no longer
    /// gives, and releases those no board in memory uses.
    async fn keep_leases(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(self.ttl / 4);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            self.renew().await;
            self.release_unused().await;
        }
    }

    async fn renew(&self) {
        if self.held.is_empty() {
            return;
        }
        let asked = Instant::now();
        let renewed = match self.store.lease(LeaseOp::Renew { node: self.node.to_string(), ttl: self.ttl }).await {
            Ok(LeaseAnswer::Holders(renewed)) => renewed,
            Ok(_) => Vec::new(),
            Err(e) => {
                // Leases run out on their own; boards stop at their next turn, or now if idle.
                tracing::warn!(error = %e, "could not renew this node's leases");
                self.lose_expired();
                return;
            }
        };
        self.stats.lease_renewals.fetch_add(1, Ordering::Relaxed);
        let renewed: std::collections::HashMap<DocumentId, i64> =
            renewed.into_iter().map(|h| (h.key, h.epoch)).collect();
        let lost: Vec<DocumentId> = self
            .held
            .iter()
            .filter_map(|lease| match renewed.get(lease.key()) {
                Some(epoch) if *epoch == lease.epoch => {
                    lease.renewed(asked, self.ttl);
                    None
                }
                _ => Some(*lease.key()),
            })
            .collect();
        for key in lost {
            if let Some((_, lease)) = self.held.remove(&key) {
                tracing::warn!(key = %key.tag(), "lost a board's lease: another node owns it now");
                self.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                lease.lose();
            }
        }
    }

    fn lose_expired(&self) {
        let expired: Vec<DocumentId> = self.held.iter().filter(|l| !l.valid()).map(|l| *l.key()).collect();
        for key in expired {
            if let Some((_, lease)) = self.held.remove(&key) {
                self.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
                lease.lose();
            }
        }
    }

    /// Releases the leases whose boards left memory (two renewals in a row), so that another
    /// node may take them at once.
    async fn release_unused(&self) {
        let Some(registry) = self.registry() else { return };
        let used: HashSet<DocumentId> =
            registry.in_memory().into_iter().filter_map(|board| self.keys.get(&board).map(|k| *k)).collect();
        let idle: Vec<DocumentId> = self.held.iter().map(|l| *l.key()).filter(|key| !used.contains(key)).collect();
        for key in idle {
            if self.unused.insert(key, ()).is_none() {
                continue;
            }
            self.unused.remove(&key);
            let Some((_, lease)) = self.held.remove(&key) else { continue };
            lease.lose();
            let op = LeaseOp::Release { node: self.node.to_string(), key: Some((key, lease.epoch)) };
            if let Err(e) = self.store.lease(op).await {
                tracing::warn!(error = %e, "could not release a lease; it will expire");
            }
        }
    }

    /// Watches the owners of the boards this node forwards to: when one's lease expired or
    /// changed hands, its route ends and its connections resume with the new owner (this node,
    /// if it takes the lease first).
    async fn watch_owners(self: Arc<Self>, shutdown: CancellationToken) {
        let mut every = tokio::time::interval((self.ttl / 8).max(Duration::from_millis(100)));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let routes = self.routes.owners();
            if routes.is_empty() {
                continue;
            }
            let keys: Vec<DocumentId> =
                routes.iter().filter_map(|(board, _)| self.keys.get(board).map(|k| *k)).collect();
            let holders: Vec<Holder> = match self.store.lease(LeaseOp::Holders { keys }).await {
                Ok(LeaseAnswer::Holders(holders)) => holders,
                _ => continue,
            };
            for (board, node) in routes {
                let Some(key) = self.keys.get(&board).map(|k| *k) else { continue };
                let holder = holders.iter().find(|h| h.key == key);
                if !holder.is_some_and(|h| h.live && h.node == node) {
                    tracing::info!(board = %board.tag(), owner = %node, "a board's owner is gone or changed; resuming with the next");
                    self.routes.end(board, &node);
                }
            }
        }
    }

    /// Hands this node's boards over: called after its boards stopped and storage holds all they
    /// accepted. Releases every lease, then tells each node that forwarded a connection here to
    /// resume it with the next owner.
    pub async fn drain(&self) {
        self.draining.cancel();
        let op = LeaseOp::Release { node: self.node.to_string(), key: None };
        match self.store.lease(op).await {
            Ok(LeaseAnswer::Released(n)) => tracing::info!(leases = n, "released this node's leases"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "could not release this node's leases; they will expire"),
        }
        for lease in self.held.iter() {
            lease.lose();
        }
        self.held.clear();
        proxy::hand_over(self).await;
        if let Err(e) = self.nats.flush().await {
            tracing::warn!(error = %e, "could not flush the last messages to NATS");
        }
    }

    /// True once the node started draining.
    pub fn draining(&self) -> bool {
        self.draining.is_cancelled()
    }

    /// Publishes a body to `subject`, in parts if one NATS message cannot take it. A failure is
    /// logged and the message dropped: NATS reconnects by itself, and what a lost sync message
    /// carried is sent again when the peers next sync (or resume).
    pub(crate) async fn publish(&self, subject: &str, headers: async_nats::HeaderMap, body: bytes::Bytes) {
        let parts = wire::parts(body, self.max_part);
        let last = parts.len() - 1;
        for (i, part) in parts.into_iter().enumerate() {
            let mut headers = headers.clone();
            if i < last {
                headers.insert(wire::MORE, "1");
            }
            if let Err(e) = self.nats.publish_with_headers(subject.to_owned(), headers, part).await {
                tracing::warn!(error = %e, "could not publish to NATS");
                return;
            }
        }
    }

    /// A handle to `board` served by `node`: the route to it, opened if needed.
    pub fn route(self: &Arc<Self>, board: DocumentId, node: String, tracker: &TaskTracker) -> BoardHandle {
        route::open(self, board, node, tracker)
    }
}

/// Answers `ping` requests, so that owners know this node is alive.
async fn answer_pings(nats: async_nats::Client, mut pings: async_nats::Subscriber, shutdown: CancellationToken) {
    use futures_util::StreamExt;
    loop {
        let message = tokio::select! {
            () = shutdown.cancelled() => return,
            message = pings.next() => match message {
                Some(message) => message,
                None => return,
            },
        };
        if let Some(reply) = message.reply {
            let _ = nats.publish(reply, bytes::Bytes::from_static(b"pong")).await;
        }
    }
}
