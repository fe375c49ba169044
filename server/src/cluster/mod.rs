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

/// How long one publish (or the drain's flush) may wait on NATS.
const PUBLISH_WITHIN: Duration = Duration::from_secs(5);

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
    /// Counts the bodies this node sent in parts, for their ids.
    next_part: AtomicU64,
    pub stats: ClusterStats,
    /// Set while the node drains: its boards are being handed over.
    draining: CancellationToken,
    /// The server's shutdown.
    shutdown: CancellationToken,
    /// What the NATS client says of its connection, for [`Cluster::start`] to watch.
    events: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>>>,
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
        let (events_tx, events) = tokio::sync::mpsc::unbounded_channel();
        let mut options = async_nats::ConnectOptions::new()
            .name(format!("hindsight-{node}"))
            .connection_timeout(Duration::from_secs(5))
            // Subscriptions buffer this many messages before NATS drops this node as slow.
            .subscription_capacity(16 * 1024)
            .event_callback(move |event| {
                let events = events_tx.clone();
                async move {
                    let _ = events.send(event);
                }
            });
        // The client logs the server's address (at debug level): it gets none of the credentials.
        let (url, credentials) = wire::split_credentials(url);
        options = match credentials {
            Some((user, Some(password))) => options.user_and_password(user, password),
            Some((token, None)) => options.token(token),
            None => options,
        };
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
            next_part: AtomicU64::new(0),
            stats: ClusterStats::default(),
            draining: CancellationToken::new(),
            shutdown,
            events: std::sync::Mutex::new(Some(events)),
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
        if holder.node != *self.node {
            return Ok(Located::There(holder.node));
        }
        let lease = self.hold(key, holder.epoch, asked);
        Ok(Located::Here(lease))
    }

    /// Records a lease taken (or found ours) at `epoch`. An answer older than the lease held
    /// (two of this node's requests crossed) gives the newer one.
    fn hold(&self, key: DocumentId, epoch: i64, asked: Instant) -> Arc<Lease> {
        let mut entry = self.held.entry(key).or_insert_with(|| {
            self.stats.leases_taken.fetch_add(1, Ordering::Relaxed);
            tracing::info!(key = %key.tag(), epoch, "took a board's lease");
            Arc::new(Lease::new(key, Arc::clone(&self.node), epoch, self.origin, asked, self.ttl))
        });
        if entry.epoch > epoch {
            return Arc::clone(&entry);
        }
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
        // A previous run under this id may have left leases live: they are not this run's.
        self.store.lease(LeaseOp::Release { node: self.node.to_string(), key: None }).await?;
        let owner = self.nats.subscribe(wire::node_subject(&self.node)).await?;
        let origin = self.nats.subscribe(wire::conn_subject(&self.node)).await?;
        let calls = self.nats.subscribe(wire::http_subject(&self.node)).await?;
        let pings = self.nats.subscribe(wire::ping_subject(&self.node)).await?;
        tracker.spawn(proxy::serve(Arc::clone(self), owner, tracker.clone(), shutdown.clone()));
        tracker.spawn(route::serve(Arc::clone(self), origin, shutdown.clone()));
        tracker.spawn(http::serve(Arc::clone(self), calls, app, tracker.clone(), shutdown.clone()));
        tracker.spawn(answer_pings(self.nats.clone(), pings, shutdown.clone()));
        // Leases are kept until the drain hands them over, after every tracked task ended: a
        // shutdown slower than a lease must not let the boards fail over instead.
        tokio::spawn(Arc::clone(self).keep_leases(self.draining.clone()));
        tracker.spawn(Arc::clone(self).watch_owners(shutdown.clone()));
        tracker.spawn(proxy::forget_gone_origins(Arc::clone(self), shutdown.clone()));
        if let Some(events) = self.events.lock().ok().and_then(|mut events| events.take()) {
            tracker.spawn(Arc::clone(self).watch_nats(events, shutdown));
        }
        tracing::info!(node = %self.node, lease_ms = self.ttl.as_millis() as u64, "joined the cluster");
        Ok(())
    }

    /// Renews this node's leases a few times per lease time; loses those the database no longer
    /// gives, and releases those no board in memory uses. Ends when the node drains.
    async fn keep_leases(self: Arc<Self>, draining: CancellationToken) {
        let mut every = tokio::time::interval(self.ttl / 4);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = draining.cancelled() => return,
                _ = every.tick() => {}
            }
            self.renew().await;
            if !self.shutdown.is_cancelled() {
                self.release_unused().await;
            }
        }
    }

    async fn renew(&self) {
        // The leases asked for, as they are now: one taken meanwhile is judged at the next round.
        let asked_for: Vec<Arc<Lease>> = self.held.iter().map(|lease| Arc::clone(&lease)).collect();
        if asked_for.is_empty() {
            return;
        }
        let held = asked_for.iter().map(|lease| (lease.key, lease.epoch)).collect();
        let asked = Instant::now();
        let op = LeaseOp::Renew { node: self.node.to_string(), ttl: self.ttl, held };
        let renewed = match self.store.lease(op).await {
            Ok(LeaseAnswer::Holders(renewed)) => renewed,
            Ok(_) => Vec::new(),
            Err(e) => {
                // Leases run out on their own; boards stop at their next turn, or now if idle.
                tracing::warn!(error = %e, "could not renew this node's leases");
                for lease in asked_for.iter().filter(|lease| !lease.valid()) {
                    self.lose(lease);
                }
                return;
            }
        };
        self.stats.lease_renewals.fetch_add(1, Ordering::Relaxed);
        let renewed: HashSet<(DocumentId, i64)> = renewed.into_iter().map(|h| (h.key, h.epoch)).collect();
        for lease in &asked_for {
            if renewed.contains(&(lease.key, lease.epoch)) {
                lease.renewed(asked, self.ttl);
            } else {
                tracing::warn!(key = %lease.key.tag(), "lost a board's lease: another node owns it now");
                self.lose(lease);
            }
        }
    }

    /// Forgets a lease this node no longer holds (if it is still the one held) and stops its
    /// boards.
    fn lose(&self, lease: &Arc<Lease>) {
        if self.held.remove_if(&lease.key, |_, held| Arc::ptr_eq(held, lease)).is_some() {
            self.stats.leases_lost.fetch_add(1, Ordering::Relaxed);
        }
        lease.lose();
    }

    /// Releases the leases whose boards left memory (two renewals in a row), so that another
    /// node may take them at once.
    async fn release_unused(&self) {
        let Some(registry) = self.registry() else { return };
        let used: HashSet<DocumentId> =
            registry.in_memory().into_iter().filter_map(|board| self.keys.get(&board).map(|k| *k)).collect();
        let held: Vec<Arc<Lease>> = self.held.iter().map(|lease| Arc::clone(&lease)).collect();
        for lease in held {
            if used.contains(&lease.key) {
                self.unused.remove(&lease.key);
                continue;
            }
            if self.unused.insert(lease.key, ()).is_none() {
                continue;
            }
            self.unused.remove(&lease.key);
            if self.held.remove_if(&lease.key, |_, held| Arc::ptr_eq(held, &lease)).is_none() {
                continue;
            }
            lease.lose();
            let op = LeaseOp::Release { node: self.node.to_string(), key: Some((lease.key, lease.epoch)) };
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

    /// Watches the NATS connection: messages may have been lost while it was down, or while this
    /// node read too slowly, so every route ends and its connections resume (a fresh sync with
    /// the owner recovers whatever went missing).
    async fn watch_nats(
        self: Arc<Self>,
        mut events: tokio::sync::mpsc::UnboundedReceiver<async_nats::Event>,
        shutdown: CancellationToken,
    ) {
        let mut was_down = false;
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = events.recv() => match event {
                    Some(event) => event,
                    None => return,
                },
            };
            match event {
                async_nats::Event::Disconnected => {
                    tracing::warn!("lost the connection to NATS; reconnecting");
                    was_down = true;
                }
                async_nats::Event::Connected if was_down => {
                    tracing::info!("connected to NATS again; resuming forwarded connections");
                    was_down = false;
                    self.routes.end_all();
                }
                async_nats::Event::SlowConsumer(_) => {
                    tracing::warn!("NATS dropped messages this node read too slowly; resuming forwarded connections");
                    self.routes.end_all();
                }
                _ => {}
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
        match tokio::time::timeout(PUBLISH_WITHIN, self.nats.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not flush the last messages to NATS"),
            Err(_) => tracing::warn!("NATS took no message for {PUBLISH_WITHIN:?}; the last ones are dropped"),
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
        let id = (last > 0).then(|| format!("{}-{}", self.node, self.next_part.fetch_add(1, Ordering::Relaxed)));
        for (i, part) in parts.into_iter().enumerate() {
            let mut headers = headers.clone();
            if let Some(id) = &id {
                headers.insert(wire::PART, id.as_str());
            }
            if i < last {
                headers.insert(wire::MORE, "1");
            }
            // While NATS is unreachable its client buffers, then makes publishers wait: bounded.
            match tokio::time::timeout(
                PUBLISH_WITHIN,
                self.nats.publish_with_headers(subject.to_owned(), headers, part),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not publish to NATS");
                    return;
                }
                Err(_) => {
                    tracing::warn!("NATS took no message for {PUBLISH_WITHIN:?}; dropped one");
                    return;
                }
            }
        }
    }

    /// A handle to `board` served by `node`: the route to it, opened if needed.
    pub fn route(self: &Arc<Self>, board: DocumentId, node: String, tracker: &TaskTracker) -> BoardHandle {
        route::open(self, board, node, tracker)
    }
}

/// The next message of a subscription; `None` once the server shuts down or NATS ends it.
async fn next_message(
    subscriber: &mut async_nats::Subscriber,
    shutdown: &CancellationToken,
) -> Option<async_nats::Message> {
    use futures_util::StreamExt;
    tokio::select! {
        () = shutdown.cancelled() => None,
        message = subscriber.next() => message,
    }
}

/// Answers `ping` requests, so that owners know this node is alive.
async fn answer_pings(nats: async_nats::Client, mut pings: async_nats::Subscriber, shutdown: CancellationToken) {
    while let Some(message) = next_message(&mut pings, &shutdown).await {
        if let Some(reply) = message.reply {
            let _ = nats.publish(reply, bytes::Bytes::from_static(b"pong")).await;
        }
    }
}
