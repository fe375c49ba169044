//! The one task per board: loads the board (and its desks when they are needed), takes peers'
//! messages in batches, stores accepted changes, then answers, and lets the board go when it has
//! been idle.
//!
//! The task is the only owner of the board's [`BoardCore`], so the documents need no lock. Each
//! turn drains every message already queued, so N changes from P peers cost one store commit and
//! one round of sync messages instead of N. The CPU work of a turn (decoding, checking, applying,
//! generating sync messages) runs on tokio's blocking pool, not on the async workers, so one
//! board's work never stalls another board, a health check or the accept loop; and each
//! connection's share of that work is metered ([`Budget`]): a connection that asks for more than
//! its share is closed.
//!
//! Invariants: a peer hears of a change only after it is on disk (the turn stores what a batch
//! changed, marks it saved, and only then flushes); this task is the only owner of the board's
//! documents, so they need no lock; a connection the board let go stays gone (what it queued
//! before is ignored until its `Left` arrives).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use automerge::Automerge;
use hindsight_shared::api::{JoinBoard, JoinedBoard};
use hindsight_shared::ids::{DocumentId, PeerId, random_token};
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::core::{BoardCore, Closing, CoreConfig, DocMessage, Effects, Told};
use super::desk::Participant;
use super::replica::ConnId;
use super::{AdmitError, AlertError, BoardMsg, Delivery, FrameKind, Keeper, PeerLink};
use crate::budget::TokenBucket;
use crate::clock::now_ms;
use crate::closing::CloseReason;
use crate::key::KeyHash;
use crate::store::{DocKind, Lease, ParticipantRecord, Store, StoreError, StoredBoard, StoredChange};
use crate::team::actor::TeamActor;
use crate::team::core::TeamCore;
use crate::team::{TeamError, TeamMsg};

/// How long the actor of a board that does not exist stays, for the requests that follow the
/// first (a connection's `request` and its retries).
const NO_BOARD_LINGER: Duration = Duration::from_secs(1);

/// The most messages one turn takes from the inbox.
const MAX_BATCH: usize = 512;

/// How much of the server one connection may use: operations it sends, CPU time its messages
/// cost the board, and bytes of sync messages it makes the board send (asking for a whole board
/// again and again is cheap to ask and costly to answer).
#[derive(Debug, Clone, Copy)]
pub struct BudgetConfig {
    pub ops_per_second: f64,
    pub ops_burst: f64,
    /// Seconds of CPU a second, and in a burst.
    pub cpu_per_second: f64,
    pub cpu_burst: f64,
    pub sync_bytes_per_second: f64,
    pub sync_bytes_burst: f64,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ops_per_second: 20_000.0,
            ops_burst: 100_000.0,
            cpu_per_second: 0.25,
            cpu_burst: 3.0,
            sync_bytes_per_second: 4.0 * 1024.0 * 1024.0,
            sync_bytes_burst: 96.0 * 1024.0 * 1024.0,
        }
    }
}

/// One connection's allowances on this board.
pub(crate) struct Budget {
    pub(crate) ops: TokenBucket,
    pub(crate) cpu: TokenBucket,
    pub(crate) sync_bytes: TokenBucket,
}

impl Budget {
    pub(crate) fn new(config: &BudgetConfig, now: Instant) -> Self {
        Self {
            ops: TokenBucket::new(config.ops_per_second, config.ops_burst, now),
            cpu: TokenBucket::new(config.cpu_per_second, config.cpu_burst, now),
            sync_bytes: TokenBucket::new(config.sync_bytes_per_second, config.sync_bytes_burst, now),
        }
    }
}

/// What a board actor needs from the server around it.
#[derive(Debug, Clone)]
pub struct BoardContext {
    pub store: Store,
    /// The server's peer id in the automerge-repo protocol.
    pub server: PeerId,
    /// How long a board without peers stays in memory.
    pub idle: Duration,
    pub core: CoreConfig,
    pub budget: BudgetConfig,
    /// The most participants one board takes.
    pub max_participants: usize,
    pub shutdown: CancellationToken,
}

/// One message of a batch, as the blocking part of a turn takes it.
enum Work {
    Receive {
        conn: ConnId,
        peer: PeerId,
        doc: DocumentId,
        message: DocMessage,
    },
    Left {
        conn: ConnId,
    },
    /// Boxed: an Automerge document is large beside the other variants.
    Joined {
        enrolled: Box<Enrolled>,
        reply: oneshot::Sender<Result<JoinedBoard, AdmitError>>,
    },
    Snapshot {
        reply: oneshot::Sender<Option<schema::Board>>,
    },
    Offer(Vec<schema::Recurrence>),
    Alerts {
        events: Vec<hindsight_shared::timeline::Event>,
        reply: oneshot::Sender<Result<usize, AlertError>>,
    },
    Claim {
        participant: String,
        desk: DocumentId,
        reply: oneshot::Sender<Result<(), AdmitError>>,
    },
}

/// Someone who joined, stored, whom the core is still to know: their desk as a document (made
/// here, so never loaded from bytes) and whether they hold the facilitator key.
struct Enrolled {
    participant: Participant,
    desk: Automerge,
    desk_bytes: usize,
    facilitator: bool,
}

/// An answer owed once a turn's changes are stored.
enum Answer {
    Joined(oneshot::Sender<Result<JoinedBoard, AdmitError>>, JoinedBoard),
    Claimed(oneshot::Sender<Result<(), AdmitError>>),
    Alerted(oneshot::Sender<Result<usize, AlertError>>, usize),
}

/// Alert payloads one board takes per minute, and in a burst.
const ALERTS_PER_MINUTE: u32 = 60;
const ALERTS_BURST: f64 = 20.0;

/// What the blocking part of a turn hands back.
struct Worked {
    core: Box<BoardCore>,
    budgets: HashMap<ConnId, Budget>,
    fx: Effects,
    answers: Vec<Answer>,
}

pub(crate) struct BoardActor {
    id: DocumentId,
    ctx: BoardContext,
    keeper: Arc<dyn Keeper>,
    inbox: mpsc::Receiver<BoardMsg>,
    /// The hash of the board's facilitator key, once the board is loaded.
    key: Option<KeyHash>,
    links: HashMap<ConnId, PeerLink>,
    /// Connections the board let go whose `Left` has not arrived yet.
    gone: HashSet<ConnId>,
    budgets: HashMap<ConnId, Budget>,
    /// Alert payloads this board takes.
    alert_budget: Option<TokenBucket>,
    /// In cluster mode, this node's lease on the board: checked before every turn, and carried
    /// by every write as its fencing token.
    lease: Option<Arc<Lease>>,
}

/// Answers a peer's request or sync message about a document this actor does not hold (or a
/// board that does not exist) with `doc-unavailable`; other messages need no answer.
pub(crate) fn say_unavailable(server: &PeerId, link: &PeerLink, doc: DocumentId, message: &DocMessage) {
    if matches!(message, DocMessage::Request(_) | DocMessage::Sync(_)) {
        let answer =
            WireMessage::DocUnavailable { document_id: doc, sender_id: server.clone(), target_id: link.peer().clone() };
        link.deliver(answer.encode().into(), FrameKind::Other);
    }
}

/// Resolves when `lease` is known lost; never without one.
pub(crate) async fn lease_lost(lease: Option<&Lease>) {
    match lease {
        Some(lease) => lease.lost().await,
        None => std::future::pending().await,
    }
}

/// True if `a` and `b` are equal, in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl BoardActor {
    pub(crate) fn new(
        id: DocumentId,
        ctx: BoardContext,
        keeper: Arc<dyn Keeper>,
        inbox: mpsc::Receiver<BoardMsg>,
        lease: Option<Arc<Lease>>,
    ) -> Self {
        Self {
            id,
            ctx,
            keeper,
            inbox,
            key: None,
            links: HashMap::new(),
            gone: HashSet::new(),
            budgets: HashMap::new(),
            alert_budget: None,
            lease,
        }
    }

    pub(crate) async fn run(mut self) {
        let stored = match self.ctx.store.load_board(self.id).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(board = %self.id.tag(), error = %e, "could not load board");
                self.fail().await;
                return;
            }
        };
        // A team's ledger is reached like a board: its actor takes this inbox over.
        if let Some(stored) = stored.as_ref().filter(|s| s.record.kind == DocKind::Team) {
            let (id, server, config) = (self.id, self.ctx.server.clone(), self.ctx.core.clone());
            let (snapshot, changes) = (stored.doc.snapshot.clone(), stored.doc.changes.clone());
            let key = stored.record.facilitator_key_hash;
            match blocking(move || TeamCore::load(id, server, &snapshot, &changes, config)).await {
                Ok(Ok(core)) => {
                    TeamActor::new(self.id, self.ctx, self.keeper, self.inbox, key, self.lease)
                        .run(Box::new(core))
                        .await;
                }
                failed => {
                    let error = failed.map(|r| r.err().map(|e| e.to_string())).unwrap_or_else(|e| Some(e.to_string()));
                    tracing::error!(team = %self.id.tag(), error = ?error, "could not load a team");
                    self.fail().await;
                }
            }
            return;
        }
        let mut core = match self.load(stored).await {
            Ok(core) => core,
            Err(e) => {
                tracing::error!(board = %self.id.tag(), error = %e, "could not load board");
                self.fail().await;
                return;
            }
        };
        let mut idle_since = tokio::time::Instant::now();
        let mut wake: Option<Instant> = None;
        loop {
            let first = tokio::select! {
                biased;
                () = self.ctx.shutdown.cancelled() => break,
                message = self.inbox.recv() => match message {
                    Some(message) => Some(message),
                    None => break,
                },
                () = sleep_until(wake), if wake.is_some() => None,
                // A lease known lost ends the board at once, idle or not.
                () = lease_lost(self.lease.as_deref()) => None,
                // A board that does not exist holds nothing worth keeping: it goes after a second
                // (one who probes ids cannot keep actors in memory for the idle time).
                () = tokio::time::sleep_until(idle_since + if core.is_some() { self.ctx.idle } else { NO_BOARD_LINGER }),
                    if self.links.is_empty() => {
                    if self.keeper.release_if_unused(self.id) {
                        tracing::debug!(board = %self.id.tag(), "evicted idle board");
                        break;
                    }
                    idle_since = tokio::time::Instant::now();
                    continue;
                }
            };
            let mut batch: Vec<BoardMsg> = first.into_iter().collect();
            while !batch.is_empty() && batch.len() < MAX_BATCH {
                match self.inbox.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
            // Decide before working: a node whose lease ran out takes nothing more.
            if self.lease.as_ref().is_some_and(|lease| !lease.valid()) {
                tracing::warn!(board = %self.id.tag(), "this node's lease on the board ran out; letting it go");
                self.stop(batch, CloseReason::MOVED).await;
                return;
            }
            let result = match core.take() {
                Some(board) => self.turn(board, batch).await.map(|(board, next)| {
                    wake = next;
                    Some(board)
                }),
                None => {
                    self.unavailable(batch);
                    Ok(None)
                }
            };
            match result {
                Ok(board) => core = board,
                Err(e) if matches!(e.downcast_ref::<StoreError>(), Some(StoreError::Fenced)) => {
                    tracing::warn!(board = %self.id.tag(), "another node took the board over; letting it go");
                    if let Some(lease) = &self.lease {
                        lease.lose();
                    }
                    self.stop(Vec::new(), CloseReason::MOVED).await;
                    return;
                }
                Err(e) => {
                    tracing::error!(board = %self.id.tag(), error = %e, "the board failed; dropping it from memory");
                    self.fail().await;
                    return;
                }
            }
            if self.links.is_empty() {
                idle_since = tokio::time::Instant::now();
            }
        }
    }

    /// Loads the board, without its desks; `None` if there is no such board.
    async fn load(&mut self, stored: Option<StoredBoard>) -> anyhow::Result<Option<Box<BoardCore>>> {
        let Some(stored) = stored else {
            return Ok(None);
        };
        self.key = Some(stored.record.facilitator_key_hash);
        let team = stored.record.team;
        let (id, server, config) = (self.id, self.ctx.server.clone(), self.ctx.core.clone());
        let started = Instant::now();
        let core = tokio::task::spawn_blocking(move || {
            let participants = stored
                .participants
                .into_iter()
                .map(|(record, bytes)| (Participant { id: record.id, name: record.name, desk: record.desk }, bytes))
                .collect();
            BoardCore::load(id, server, &stored.doc.snapshot, &stored.doc.changes, participants, config)
        })
        .await??;
        let mut core = core;
        if let Some(team) = team {
            core.belongs_to(team, now_ms());
        }
        tracing::debug!(board = %self.id.tag(), elapsed_ms = started.elapsed().as_millis() as u64, "loaded board");
        Ok(Some(Box::new(core)))
    }

    /// True if `key` is this board's facilitator key.
    fn holds_key(&self, key: &str) -> bool {
        self.key.is_some_and(|hash| hash.matches(key))
    }

    /// Takes in the people a batch brings, at once (so their desks are stored in one commit),
    /// and queues them for the core. A full board is refused from the count in memory, without
    /// touching storage; storage checks the limit again as it stores.
    async fn enrol_all(
        &self,
        core: &BoardCore,
        joins: Vec<(JoinBoard, oneshot::Sender<Result<JoinedBoard, AdmitError>>)>,
        work: &mut Vec<Work>,
    ) {
        let max = self.ctx.max_participants;
        let room = max.saturating_sub(core.participant_count());
        let mut taken = Vec::new();
        for (i, (join, reply)) in joins.into_iter().enumerate() {
            if i < room {
                taken.push((join, reply));
            } else {
                drop(reply.send(Err(AdmitError::Full(max))));
            }
        }
        let enrolled = futures_util::future::join_all(
            taken.into_iter().map(|(join, reply)| async move { (self.enrol(join).await, reply) }),
        )
        .await;
        for (result, reply) in enrolled {
            match result {
                Ok(enrolled) => work.push(Work::Joined { enrolled, reply }),
                Err(error) => drop(reply.send(Err(error))),
            }
        }
    }

    /// Takes someone in: checks their name and facilitator key, makes their desk and stores them
    /// with it (within the board's participant limit), so that the turn only has to tell the core.
    async fn enrol(&self, mut join: JoinBoard) -> Result<Box<Enrolled>, AdmitError> {
        // Names show in everyone's roster: no control or direction-override characters.
        join.name = schema::clean_line(&join.name);
        if join.name.chars().count() > schema::MAX_NAME_CHARS {
            return Err(AdmitError::BadName(format!("a name may have at most {} characters", schema::MAX_NAME_CHARS)));
        }
        let facilitator = match &join.facilitator_key {
            None => false,
            Some(key) if self.holds_key(key) => true,
            Some(_) => return Err(AdmitError::WrongKey),
        };
        let participant = Participant { id: random_token::<9>(), name: join.name, desk: DocumentId::random() };
        let desk =
            schema::new_desk_document(automerge::ActorId::random()).map_err(|e| AdmitError::Failed(e.to_string()))?;
        let bytes = desk.save();
        let desk_bytes = bytes.len();
        let record = ParticipantRecord {
            board: self.id,
            id: participant.id.clone(),
            name: participant.name.clone(),
            desk: participant.desk,
            joined_at_ms: now_ms(),
        };
        let fence = self.lease.as_ref().map(|lease| lease.fence());
        self.ctx.store.create_participant(record, bytes, self.ctx.max_participants, fence).await.map_err(
            |e| match e {
                StoreError::BoardFull(max) => AdmitError::Full(max),
                e => AdmitError::Failed(e.to_string()),
            },
        )?;
        self.keeper.remember_desk(participant.desk, self.id);
        Ok(Box::new(Enrolled { participant, desk, desk_bytes, facilitator }))
    }

    /// Loads desks from storage into the core, off the async workers.
    async fn load_desks(&self, core: &mut BoardCore, desks: Vec<DocumentId>) -> anyhow::Result<()> {
        if desks.is_empty() {
            return Ok(());
        }
        let stored = self.ctx.store.load_many(desks).await?;
        let loader = core.desk_loader();
        let started = Instant::now();
        let replicas = tokio::task::spawn_blocking(move || {
            stored
                .into_iter()
                .filter_map(|(desk, doc)| match loader.load(desk, &doc.snapshot, &doc.changes) {
                    Ok(replica) => Some(replica),
                    Err(e) => {
                        tracing::error!(desk = %desk.tag(), error = %e, "could not load a desk");
                        None
                    }
                })
                .collect::<Vec<_>>()
        })
        .await?;
        let count = replicas.len();
        for replica in replicas {
            core.insert_desk(replica);
        }
        tracing::debug!(board = %self.id.tag(), desks = count, elapsed_ms = started.elapsed().as_millis() as u64, "loaded desks");
        Ok(())
    }

    /// Answers a batch for a board that does not exist.
    fn unavailable(&mut self, batch: Vec<BoardMsg>) {
        for message in batch {
            match message {
                BoardMsg::FromPeer { link, doc, message } => say_unavailable(&self.ctx.server, &link, doc, &message),
                BoardMsg::Snapshot { reply } => drop(reply.send(None)),
                BoardMsg::Join { reply, .. } => drop(reply.send(Err(AdmitError::NoBoard))),
                BoardMsg::Claim { reply, .. } => drop(reply.send(Err(AdmitError::NoBoard))),
                BoardMsg::Team(message) => crate::team::actor::refuse(message, TeamError::NoTeam),
                BoardMsg::Alerts { reply, .. } => drop(reply.send(Err(AlertError::NoBoard))),
                BoardMsg::Left { .. } | BoardMsg::Recurrences(_) => {}
            }
        }
    }

    /// One turn: apply a batch, let the server react, store what changed, then answer. Returns
    /// the core, and when to flush again for a roster change that waits for its interval.
    async fn turn(
        &mut self,
        mut core: Box<BoardCore>,
        batch: Vec<BoardMsg>,
    ) -> anyhow::Result<(Box<BoardCore>, Option<Instant>)> {
        let mut work = Vec::with_capacity(batch.len());
        let mut wanted = Vec::new();
        let mut joins = Vec::new();
        for message in batch {
            match message {
                BoardMsg::Left { conn } => {
                    // The connection's last message: nothing of it is queued after this.
                    self.gone.remove(&conn);
                    self.links.remove(&conn);
                    self.budgets.remove(&conn);
                    work.push(Work::Left { conn });
                }
                BoardMsg::Snapshot { reply } => work.push(Work::Snapshot { reply }),
                BoardMsg::Team(message) => crate::team::actor::refuse(message, TeamError::NoTeam),
                BoardMsg::Recurrences(offers) => work.push(Work::Offer(offers)),
                BoardMsg::Alerts { token, events, reply } => {
                    let expected = self.key.map(|k| hindsight_shared::alerts::token(&k.0)).unwrap_or_default();
                    let now = Instant::now();
                    let bucket = self.alert_budget.get_or_insert_with(|| {
                        TokenBucket::new(f64::from(ALERTS_PER_MINUTE) / 60.0, ALERTS_BURST, now)
                    });
                    if !constant_time_eq(token.as_bytes(), expected.as_bytes()) {
                        drop(reply.send(Err(AlertError::WrongToken)));
                    } else if !bucket.take(1.0, now) {
                        drop(reply.send(Err(AlertError::TooMany(ALERTS_PER_MINUTE))));
                    } else {
                        work.push(Work::Alerts { events, reply });
                    }
                }
                BoardMsg::Join { join, reply } => joins.push((join, reply)),
                BoardMsg::Claim { claim, reply } => {
                    if !self.holds_key(&claim.facilitator_key) {
                        drop(reply.send(Err(AdmitError::WrongKey)));
                    } else if let Ok(desk) = claim.desk_id.parse() {
                        work.push(Work::Claim { participant: claim.participant_id, desk, reply });
                    } else {
                        drop(reply.send(Err(AdmitError::NotJoined)));
                    }
                }
                // A connection this board let go (it stopped reading, or broke the protocol)
                // may still have messages queued here: the client keeps what it sent and sends
                // it again when it reconnects. Taking them would bring the connection back.
                BoardMsg::FromPeer { link, .. } if self.gone.contains(&link.conn()) => {}
                BoardMsg::FromPeer { link, doc, message } if core.holds(doc) => {
                    let (conn, peer) = (link.conn(), link.peer().clone());
                    self.links.entry(conn).or_insert(link);
                    if core.wants_desk(doc) && !wanted.contains(&doc) {
                        wanted.push(doc);
                    }
                    work.push(Work::Receive { conn, peer, doc, message });
                }
                BoardMsg::FromPeer { link, doc, message } => say_unavailable(&self.ctx.server, &link, doc, &message),
            }
        }
        self.enrol_all(&core, joins, &mut work).await;
        self.load_desks(&mut core, wanted).await?;

        let budgets = std::mem::take(&mut self.budgets);
        let config = self.ctx.budget;
        // The batch, and (unless desks must load first) the server's reactions to it, in one
        // trip to the blocking pool.
        let worked = blocking(move || {
            let mut worked = take_batch(core, budgets, work, &config);
            let changes = worked.core.desks_to_load().is_empty().then(|| govern(&mut worked.core));
            (worked, changes)
        })
        .await?;
        let (Worked { mut core, budgets, mut fx, answers }, changes) = worked;
        self.budgets = budgets;
        let (mut core, changes) = match changes {
            Some(changes) => (core, changes),
            None => {
                let missing = core.desks_to_load();
                self.load_desks(&mut core, missing).await?;
                blocking(move || {
                    let changes = govern(&mut core);
                    (core, changes)
                })
                .await?
            }
        };
        if !changes.is_empty() {
            let fence = self.lease.as_ref().map(|lease| lease.fence());
            self.ctx.store.append_many(self.id, changes, fence).await?;
        }
        core.saved();
        if let Some((team, told)) = core.take_told() {
            for told in told {
                let message = match told {
                    Told::Reviewed { board, items } => TeamMsg::Reviewed { board, items },
                    Told::Finished(finished) => TeamMsg::Finished(finished),
                    Told::Confirmed { board, cluster, past } => TeamMsg::Confirmed { board, cluster, past },
                };
                self.keeper.tell(team, BoardMsg::Team(message));
            }
        }
        let (core, flushed, wake) = blocking(move || {
            let mut fx = Effects::default();
            let wake = core.flush(Instant::now(), now_ms(), &mut fx);
            (core, fx, wake)
        })
        .await?;
        fx.send.extend(flushed.send);
        fx.close.extend(flushed.close);
        let mut core = core;
        self.deliver(&mut core, fx);
        for answer in answers {
            match answer {
                Answer::Joined(reply, joined) => drop(reply.send(Ok(joined))),
                Answer::Claimed(reply) => drop(reply.send(Ok(()))),
                Answer::Alerted(reply, added) => drop(reply.send(Ok(added))),
            }
        }
        Ok((core, wake))
    }

    /// Hands the effects of a turn to the connections: frames in order, then closes. A
    /// connection that cannot take its frames, or whose sync messages exceed its budget, is let
    /// go.
    fn deliver(&mut self, core: &mut BoardCore, fx: Effects) {
        let now = Instant::now();
        for (conn, message) in fx.send {
            let Some(link) = self.links.get(&conn) else { continue };
            let kind = match message {
                WireMessage::Sync { .. } => FrameKind::Sync,
                WireMessage::Error { .. } => FrameKind::Error,
                _ => FrameKind::Other,
            };
            let frame = message.encode();
            if kind == FrameKind::Sync {
                let budget = self.budgets.entry(conn).or_insert_with(|| Budget::new(&self.ctx.budget, now));
                if !budget.sync_bytes.charge(frame.len() as f64, now) {
                    let message = "too much data asked for: the board was sent again and again".to_owned();
                    tracing::debug!(board = %self.id.tag(), conn, "closing a connection over its sync budget");
                    link.refuse(message, CloseReason::TOO_MUCH_WORK);
                    self.let_go(core, conn);
                    continue;
                }
            }
            if link.deliver(frame.into(), kind) == Delivery::Dropped {
                self.let_go(core, conn);
            }
        }
        for (conn, Closing { message, reason }) in fx.close {
            tracing::debug!(board = %self.id.tag(), conn, reason = reason.reason, error = ?message, "closing a peer's connection");
            if let Some(link) = self.links.remove(&conn) {
                link.refuse(message, reason);
            }
            self.gone.insert(conn);
        }
    }

    /// Forgets a connection the board dropped; its `Left` is still to come.
    fn let_go(&mut self, core: &mut BoardCore, conn: ConnId) {
        self.links.remove(&conn);
        self.gone.insert(conn);
        core.leave(conn);
    }

    /// Gives up on the board after a failure: nothing unsaved may be acknowledged, so every peer
    /// is disconnected (their clients keep their changes and resend them) and the board leaves
    /// memory, to be loaded afresh from disk by the next request.
    async fn fail(self) {
        self.stop(Vec::new(), CloseReason::INTERNAL).await;
    }

    /// Leaves memory and closes every connection with `reason`, those whose messages are still
    /// queued (in `batch` or the inbox) included; what waits for an answer finds the board gone.
    async fn stop(mut self, batch: Vec<BoardMsg>, reason: CloseReason) {
        self.keeper.release(self.id);
        for link in self.links.values() {
            link.close(reason);
        }
        self.inbox.close();
        let mut queued = batch;
        loop {
            for message in queued.drain(..) {
                if let BoardMsg::FromPeer { link, .. } = message {
                    link.close(reason);
                }
            }
            match self.inbox.recv().await {
                Some(message) => queued.push(message),
                None => break,
            }
        }
    }
}

/// The CPU part of a turn: every message of a batch through the core, each connection's share of
/// the work metered.
fn take_batch(
    mut core: Box<BoardCore>,
    mut budgets: HashMap<ConnId, Budget>,
    work: Vec<Work>,
    config: &BudgetConfig,
) -> Worked {
    let mut fx = Effects::default();
    let mut answers = Vec::new();
    let mut closed: HashSet<ConnId> = HashSet::new();
    for item in work {
        match item {
            Work::Left { conn } => core.leave(conn),
            Work::Snapshot { reply } => drop(reply.send(Some(core.board().clone()))),
            Work::Offer(offers) => {
                if let Err(e) = core.offer(offers) {
                    tracing::error!(board = %core.id().tag(), error = %e, "could not offer recurring causes");
                }
            }
            Work::Joined { enrolled, reply } => {
                let Enrolled { participant, desk, desk_bytes, facilitator } = *enrolled;
                let joined = JoinedBoard {
                    participant_id: participant.id.clone(),
                    desk_id: participant.desk.to_string(),
                    facilitator,
                };
                match core.join(participant, desk, desk_bytes, facilitator) {
                    Ok(()) => answers.push(Answer::Joined(reply, joined)),
                    Err(e) => drop(reply.send(Err(AdmitError::Failed(e.to_string())))),
                }
            }
            Work::Alerts { events, reply } => match core.add_alerts(events) {
                Ok(added) => answers.push(Answer::Alerted(reply, added)),
                Err(e) => drop(reply.send(Err(AlertError::Failed(e.to_string())))),
            },
            Work::Claim { participant, desk, reply } => match core.claim(&participant, desk) {
                Ok(()) => answers.push(Answer::Claimed(reply)),
                Err(error) => drop(reply.send(Err(error))),
            },
            Work::Receive { conn, .. } if closed.contains(&conn) => {}
            Work::Receive { conn, peer, doc, message } => {
                let now = Instant::now();
                let budget = budgets.entry(conn).or_insert_with(|| Budget::new(config, now));
                if core.wants_desk(doc) {
                    let message = "the desk could not be loaded".to_owned();
                    core.leave(conn);
                    fx.close.push((conn, Closing { message, reason: CloseReason::INTERNAL }));
                    closed.insert(conn);
                    continue;
                }
                let mut ops = budget.ops.available(now);
                let before = ops;
                let cpu = cpu_time::ThreadTime::now();
                core.receive(conn, &peer, doc, message, now, &mut ops, &mut fx);
                let spent = cpu.elapsed();
                let now = Instant::now();
                budget.ops.charge((before - ops) as f64, now);
                if !budget.cpu.charge(spent.as_secs_f64(), now) {
                    tracing::debug!(
                        conn,
                        cpu_ms = spent.as_millis() as u64,
                        "closing a connection over its CPU budget"
                    );
                    core.leave(conn);
                    let message = "too much work: this connection used more than its share of the server".to_owned();
                    fx.close.push((conn, Closing { message, reason: CloseReason::TOO_MUCH_WORK }));
                }
                if fx.close.iter().any(|(c, _)| *c == conn) {
                    closed.insert(conn);
                }
            }
        }
    }
    Worked { core, budgets, fx, answers }
}

/// The server's own reactions to a batch, and the changes to store: every desk the core wanted
/// is loaded by now.
fn govern(core: &mut BoardCore) -> Vec<(DocumentId, Vec<StoredChange>)> {
    if let Err(e) = core.govern(now_ms()) {
        tracing::error!(board = %core.id().tag(), error = %e, "the server could not apply its own rules");
    }
    core.unsaved()
        .into_iter()
        .map(|(doc, changes)| {
            let stored = changes
                .iter()
                .map(|change| StoredChange { hash: change.hash().0, bytes: change.raw_bytes().to_vec() })
                .collect();
            (doc, stored)
        })
        .collect()
}

/// Runs CPU-bound work on tokio's blocking pool. A panic there (a bug here or in a library) is
/// an error of the board, which is then reloaded from storage.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| anyhow::anyhow!("the board's work failed: {e}"))
}

pub(crate) async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}
