//! The one task per team: owns its [`TeamCore`], takes messages in batches (peers' sync
//! messages, boards' news, routes' requests), stores what a batch changed, then answers and
//! flushes; sends a heartbeat to quiet team pages; lets the team go when idle.
//!
//! Invariant: as for a board, a peer hears of a change only after it is on disk, and this task
//! is the only owner of the ledger.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hindsight_shared::ids::DocumentId;
use hindsight_shared::protocol::WireMessage;
use tokio::sync::mpsc;

use super::core::TeamCore;
use super::{TeamError, TeamMsg};
use crate::board::actor::{BoardContext, Budget, blocking, say_unavailable};
use crate::board::core::{Closing, Effects};
use crate::board::replica::ConnId;
use crate::board::{AdmitError, BoardMsg, Delivery, FrameKind, Keeper, PeerLink};
use crate::clock::now_ms;
use crate::closing::CloseReason;
use crate::key::KeyHash;
use crate::store::StoredChange;

/// How often a quiet team page hears from the server (a browser cannot see WebSocket pings).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The most messages one turn takes from the inbox.
const MAX_BATCH: usize = 512;

pub(crate) struct TeamActor {
    id: DocumentId,
    ctx: BoardContext,
    keeper: Arc<dyn Keeper>,
    inbox: mpsc::Receiver<BoardMsg>,
    /// The hash of the team key.
    key: KeyHash,
    links: HashMap<ConnId, PeerLink>,
    gone: HashSet<ConnId>,
    budgets: HashMap<ConnId, Budget>,
    /// In cluster mode, this node's lease on the team (as the board actor's).
    lease: Option<Arc<crate::store::Lease>>,
}

/// What a turn ends with.
enum Next {
    Go(Box<TeamCore>),
    /// A key holder deleted the team.
    Deleted,
}

impl TeamActor {
    pub(crate) fn new(
        id: DocumentId,
        ctx: BoardContext,
        keeper: Arc<dyn Keeper>,
        inbox: mpsc::Receiver<BoardMsg>,
        key: KeyHash,
        lease: Option<Arc<crate::store::Lease>>,
    ) -> Self {
        Self {
            id,
            ctx,
            keeper,
            inbox,
            key,
            links: HashMap::new(),
            gone: HashSet::new(),
            budgets: HashMap::new(),
            lease,
        }
    }

    /// True if this node lost its lease on the team.
    fn lease_lost(&self) -> bool {
        self.lease.as_ref().is_some_and(|lease| !lease.valid())
    }

    pub(crate) async fn run(mut self, mut core: Box<TeamCore>) {
        let mut idle_since = tokio::time::Instant::now();
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let first = tokio::select! {
                biased;
                () = self.ctx.shutdown.cancelled() => return,
                message = self.inbox.recv() => match message {
                    Some(message) => message,
                    None => return,
                },
                () = crate::board::actor::lease_lost(self.lease.as_deref()) => {
                    return self.stop(TeamError::Failed("the team moved to another server".into())).await;
                }
                _ = heartbeat.tick() => {
                    let mut fx = Effects::default();
                    core.heartbeat(now_ms(), &mut fx);
                    self.deliver(&mut core, fx);
                    continue;
                }
                () = tokio::time::sleep_until(idle_since + self.ctx.idle), if self.links.is_empty() => {
                    if self.keeper.release_if_unused(self.id) {
                        return;
                    }
                    idle_since = tokio::time::Instant::now();
                    continue;
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match self.inbox.try_recv() {
                    Ok(message) => batch.push(message),
                    Err(_) => break,
                }
            }
            if self.lease_lost() {
                tracing::warn!(team = %self.id.tag(), "this node's lease on the team ran out; letting it go");
                for message in batch {
                    match message {
                        BoardMsg::FromPeer { link, .. } => link.close(CloseReason::MOVED),
                        BoardMsg::Team(message) => refuse(message, TeamError::Failed("the team moved".into())),
                        _ => {}
                    }
                }
                return self.stop(TeamError::Failed("the team moved to another server".into())).await;
            }
            match self.turn(core, batch).await {
                Ok(Next::Go(next)) => core = next,
                Ok(Next::Deleted) => return self.stop(TeamError::NoTeam).await,
                Err(e) => {
                    if matches!(e.downcast_ref::<crate::store::StoreError>(), Some(crate::store::StoreError::Fenced)) {
                        if let Some(lease) = &self.lease {
                            lease.lose();
                        }
                        tracing::warn!(team = %self.id.tag(), "another node took the team over; letting it go");
                    } else {
                        tracing::error!(team = %self.id.tag(), error = %e, "the team failed; dropping it from memory");
                    }
                    return self.stop(TeamError::Failed(e.to_string())).await;
                }
            }
            if self.links.is_empty() {
                idle_since = tokio::time::Instant::now();
            }
        }
    }

    /// One turn: the batch through the core, the server's stamps, storage, then answers.
    async fn turn(&mut self, core: Box<TeamCore>, batch: Vec<BoardMsg>) -> anyhow::Result<Next> {
        let mut receives = Vec::new();
        let mut news = Vec::new();
        for message in batch {
            match message {
                BoardMsg::Left { conn } => {
                    self.gone.remove(&conn);
                    self.links.remove(&conn);
                    self.budgets.remove(&conn);
                    news.push(Work::Left(conn));
                }
                BoardMsg::FromPeer { link, .. } if self.gone.contains(&link.conn()) => {}
                BoardMsg::FromPeer { link, doc, message } if core.holds(doc) => {
                    let conn = link.conn();
                    let peer = link.peer().clone();
                    self.links.entry(conn).or_insert(link);
                    receives.push((conn, peer, message));
                }
                BoardMsg::FromPeer { link, doc, message } => say_unavailable(&self.ctx.server, &link, doc, &message),
                BoardMsg::Team(TeamMsg::Manage { key, change, reply }) => {
                    if self.key.matches(&key) {
                        news.push(Work::Manage(change, reply));
                    } else {
                        drop(reply.send(Err(TeamError::WrongKey)));
                    }
                }
                BoardMsg::Team(message) => news.push(Work::Team(message)),
                BoardMsg::Join { reply, .. } => drop(reply.send(Err(AdmitError::NoBoard))),
                BoardMsg::Claim { reply, .. } => drop(reply.send(Err(AdmitError::NoBoard))),
                BoardMsg::Snapshot { reply } => drop(reply.send(None)),
                BoardMsg::Alerts { reply, .. } => drop(reply.send(Err(crate::board::AlertError::NoBoard))),
                BoardMsg::Recurrences(_) => {}
            }
        }
        let budgets = std::mem::take(&mut self.budgets);
        let config = self.ctx.budget;
        let id = self.id;
        let (mut core, budgets, mut fx, answers, delete) = blocking(move || {
            let mut core = core;
            let mut budgets = budgets;
            let mut fx = Effects::default();
            let mut answers = Vec::new();
            let mut delete = None;
            for work in news {
                match work {
                    Work::Left(conn) => core.leave(conn),
                    Work::Team(message) => answers.push(take(&mut core, message)),
                    Work::Manage(change, reply) => match core.manage(&change) {
                        Ok(true) => delete = Some(reply),
                        Ok(false) => answers.push(Answer::Managed(reply, Ok(()))),
                        Err(e) => answers.push(Answer::Managed(reply, Err(e))),
                    },
                }
            }
            for (conn, peer, message) in receives {
                let now = Instant::now();
                let budget = budgets.entry(conn).or_insert_with(|| Budget::new(&config, now));
                let mut ops = budget.ops.available(now);
                let before = ops;
                let cpu = cpu_time::ThreadTime::now();
                core.receive(conn, &peer, message, now, &mut ops, &mut fx);
                let (spent, now) = (cpu.elapsed(), Instant::now());
                budget.ops.charge((before - ops) as f64, now);
                if !budget.cpu.charge(spent.as_secs_f64(), now) {
                    core.leave(conn);
                    let message = "too much work: this connection used more than its share of the server".to_owned();
                    fx.close.push((conn, Closing { message, reason: CloseReason::TOO_MUCH_WORK }));
                }
            }
            if let Err(e) = core.govern(now_ms()) {
                tracing::error!(team = %id.tag(), error = %e, "the server could not stamp the ledger");
            }
            (core, budgets, fx, answers, delete)
        })
        .await?;
        self.budgets = budgets;
        if let Some(reply) = delete {
            self.ctx.store.delete(self.id, self.lease.as_ref().map(|lease| lease.fence())).await?;
            tracing::info!(team = %self.id.tag(), "deleted a team");
            drop(reply.send(Ok(())));
            // What else the batch asked is answered as if the team were gone already.
            for answer in answers {
                answer.gone();
            }
            return Ok(Next::Deleted);
        }
        let changes: Vec<StoredChange> = core
            .unsaved()
            .iter()
            .map(|change| StoredChange { hash: change.hash().0, bytes: change.raw_bytes().to_vec() })
            .collect();
        if !changes.is_empty() {
            let fence = self.lease.as_ref().map(|lease| lease.fence());
            self.ctx.store.append_many(self.id, vec![(self.id, changes)], fence).await?;
        }
        core.saved();
        let (core, flushed) = blocking(move || {
            let mut fx = Effects::default();
            core.flush(&mut fx);
            (core, fx)
        })
        .await?;
        fx.send.extend(flushed.send);
        let mut core = core;
        self.deliver(&mut core, fx);
        for answer in answers {
            answer.send(core.ledger(), self.keeper.as_ref());
        }
        Ok(Next::Go(core))
    }

    /// Hands frames to the connections, then closes what the core closed.
    fn deliver(&mut self, core: &mut TeamCore, fx: Effects) {
        let now = Instant::now();
        for (conn, message) in fx.send {
            let Some(link) = self.links.get(&conn) else { continue };
            let kind = if matches!(message, WireMessage::Sync { .. }) { FrameKind::Sync } else { FrameKind::Other };
            let frame = message.encode();
            let budget = self.budgets.entry(conn).or_insert_with(|| Budget::new(&self.ctx.budget, now));
            if kind == FrameKind::Sync && !budget.sync_bytes.charge(frame.len() as f64, now) {
                link.refuse(
                    "too much data asked for: the ledger was sent again and again".into(),
                    CloseReason::TOO_MUCH_WORK,
                );
                self.let_go(core, conn);
                continue;
            }
            if link.deliver(frame.into(), kind) == Delivery::Dropped {
                self.let_go(core, conn);
            }
        }
        for (conn, Closing { message, reason }) in fx.close {
            if let Some(link) = self.links.remove(&conn) {
                link.refuse(message, reason);
            }
            core.leave(conn);
            self.gone.insert(conn);
        }
    }

    fn let_go(&mut self, core: &mut TeamCore, conn: ConnId) {
        self.links.remove(&conn);
        self.gone.insert(conn);
        core.leave(conn);
    }

    /// The team is gone (deleted, or failed): leaves memory, closes its connections (they ask
    /// again and find it, or find nothing), and answers what is still queued.
    async fn stop(mut self, why: TeamError) {
        self.keeper.release(self.id);
        let reason = match why {
            TeamError::NoTeam => CloseReason::NORMAL,
            _ if self.lease_lost() => CloseReason::MOVED,
            _ => CloseReason::INTERNAL,
        };
        for link in self.links.values() {
            link.close(reason);
        }
        self.inbox.close();
        while let Some(message) = self.inbox.recv().await {
            match message {
                BoardMsg::FromPeer { link, .. } => link.close(reason),
                BoardMsg::Team(message) => refuse(message, why.clone()),
                BoardMsg::Join { reply, .. } => drop(reply.send(Err(AdmitError::NoBoard))),
                BoardMsg::Claim { reply, .. } => drop(reply.send(Err(AdmitError::NoBoard))),
                BoardMsg::Snapshot { reply } => drop(reply.send(None)),
                BoardMsg::Alerts { reply, .. } => drop(reply.send(Err(crate::board::AlertError::NoBoard))),
                BoardMsg::Left { .. } | BoardMsg::Recurrences(_) => {}
            }
        }
    }
}

/// A message of a batch, as the blocking part of a turn takes it.
enum Work {
    Left(ConnId),
    Team(TeamMsg),
    Manage(hindsight_shared::api::TeamChange, tokio::sync::oneshot::Sender<Result<(), TeamError>>),
}

/// An answer owed once the turn's changes are stored.
enum Answer {
    Review(
        tokio::sync::oneshot::Sender<Result<Vec<hindsight_shared::schema::ReviewItem>, TeamError>>,
        Result<Vec<hindsight_shared::schema::ReviewItem>, TeamError>,
    ),
    Snapshot(tokio::sync::oneshot::Sender<Option<hindsight_shared::ledger::Ledger>>),
    Managed(tokio::sync::oneshot::Sender<Result<(), TeamError>>, Result<(), TeamError>),
    /// Past causes to offer to a board, by its id.
    Offer(String, Vec<hindsight_shared::schema::Recurrence>),
    None,
}

impl Answer {
    /// Answers for a team deleted in the same turn.
    fn gone(self) {
        match self {
            Answer::Review(reply, _) => drop(reply.send(Err(TeamError::NoTeam))),
            Answer::Snapshot(reply) => drop(reply.send(None)),
            Answer::Managed(reply, _) => drop(reply.send(Err(TeamError::NoTeam))),
            Answer::Offer(..) | Answer::None => {}
        }
    }

    fn send(self, ledger: &hindsight_shared::ledger::Ledger, keeper: &dyn Keeper) {
        match self {
            Answer::Offer(board, offers) => {
                if let Ok(board) = board.parse() {
                    keeper.tell(board, BoardMsg::Recurrences(offers));
                }
            }
            Answer::Review(reply, result) => drop(reply.send(result)),
            Answer::Snapshot(reply) => drop(reply.send(Some(ledger.clone()))),
            Answer::Managed(reply, result) => drop(reply.send(result)),
            Answer::None => {}
        }
    }
}

/// Takes a board's (or a route's) message.
fn take(core: &mut TeamCore, message: TeamMsg) -> Answer {
    match message {
        TeamMsg::NewBoard { retro, reply } => Answer::Review(reply, core.new_board(retro)),
        TeamMsg::Finished(finished) => match core.finished(&finished) {
            Ok(offers) if !offers.is_empty() => Answer::Offer(finished.board.clone(), offers),
            Ok(_) => Answer::None,
            Err(e) => {
                tracing::error!(error = %e, "could not record a finished retro");
                Answer::None
            }
        },
        TeamMsg::Confirmed { board, cluster, past } => {
            if let Err(e) = core.confirmed(&board, &cluster, &past, now_ms()) {
                tracing::error!(error = %e, "could not record a recurrence");
            }
            Answer::None
        }
        TeamMsg::Reviewed { board, items } => {
            if let Err(e) = core.reviewed(&board, &items) {
                tracing::error!(error = %e, "could not record a review");
            }
            Answer::None
        }
        TeamMsg::Snapshot { reply } => Answer::Snapshot(reply),
        TeamMsg::Manage { reply, .. } => Answer::Managed(reply, Err(TeamError::WrongKey)),
    }
}

/// Answers a message for a team that does not exist (or is gone).
pub(crate) fn refuse(message: TeamMsg, why: TeamError) {
    match message {
        TeamMsg::NewBoard { reply, .. } => drop(reply.send(Err(why))),
        TeamMsg::Snapshot { reply } => drop(reply.send(None)),
        TeamMsg::Manage { reply, .. } => drop(reply.send(Err(why))),
        TeamMsg::Finished(_) | TeamMsg::Reviewed { .. } | TeamMsg::Confirmed { .. } => {}
    }
}
