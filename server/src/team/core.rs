//! The sans-IO team: its ledger document and the peers syncing it, the rules of what they may
//! write, and the server's own writes. Events in ([`TeamCore::receive`], [`TeamCore::finished`],
//! ...), effects out ([`Effects`]); the actor stores [`TeamCore::unsaved`] before it flushes.
//!
//! Invariant (tidy: team-core-sans-io): no store, registry, connection, route, clock or tokio
//! here; the actor passes `now` in.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use automerge::{ActorId, Automerge, Change};
use hindsight_shared::api::TeamChange;
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::ledger::{self, Finished, Ledger, MAX_TEAM_NAME_CHARS, Retro};
use hindsight_shared::presence::Notice;
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::rules::{self, Refusal};
use hindsight_shared::schema::{self, ReviewItem, SchemaError};

use super::TeamError;
use crate::board::core::{Closing, CoreConfig, DocMessage, Effects};
use crate::board::guards::Quota;
use crate::board::replica::{ConnId, Guard, LoadError, ReceiveError, Replica};
use crate::closing::CloseReason;

/// A peer that keeps sending changes the rules refuse is disconnected after this many.
const MAX_REFUSALS_PER_CONNECTION: u32 = 50;

/// Guards the ledger for one connection: statuses and reasons only (see
/// [`rules::check_ledger_writes`]).
struct LedgerGuard<'a> {
    ledger: &'a mut Ledger,
    quota: &'a mut Quota,
    /// Actions whose status a peer changed: the server stamps their `done_at`.
    touched: &'a mut HashSet<String>,
}

impl Guard for LedgerGuard<'_> {
    type Touched = (Vec<String>, usize);

    fn may_write(&self) -> Result<(), Refusal> {
        Ok(())
    }

    fn before(&mut self, doc: &Automerge, change: &Change) -> Result<Self::Touched, Refusal> {
        self.quota.check(change)?;
        let ops = rules::place(doc, change)?;
        Ok((rules::check_ledger_writes(self.ledger, &ops)?, change.raw_bytes().len()))
    }

    fn after(&mut self, doc: &Automerge, (ids, bytes): Self::Touched) -> Result<(), Refusal> {
        rules::settle_ledger(doc, self.ledger, &ids)?;
        self.quota.used += bytes;
        self.touched.extend(ids);
        Ok(())
    }
}

/// One team's ledger and its peers.
pub struct TeamCore {
    id: DocumentId,
    server: PeerId,
    ledger: Replica,
    cache: Ledger,
    conns: HashSet<ConnId>,
    refusals: HashMap<ConnId, u32>,
    touched: HashSet<String>,
    quota: Quota,
    notices_sent: u64,
    config: CoreConfig,
}

impl TeamCore {
    /// Rebuilds a ledger from storage. CPU-bound: call it off the async runtime.
    pub fn load(
        id: DocumentId,
        server: PeerId,
        snapshot: &[u8],
        changes: &[Vec<u8>],
        config: CoreConfig,
    ) -> Result<Self, LoadError> {
        let ledger =
            Replica::load(id, ActorId::random(), snapshot, changes, config.max_document_bytes, config.limits.clone())?;
        let cache = Ledger::read(ledger.doc()).unwrap_or_default();
        let quota = Quota { used: ledger.bytes(), max: config.max_document_bytes };
        Ok(Self {
            id,
            server,
            ledger,
            cache,
            conns: HashSet::new(),
            refusals: HashMap::new(),
            touched: HashSet::new(),
            quota,
            notices_sent: 0,
            config,
        })
    }

    pub fn ledger(&self) -> &Ledger {
        &self.cache
    }

    /// True if `doc` is this team's ledger.
    pub fn holds(&self, doc: DocumentId) -> bool {
        doc == self.id
    }

    /// Takes one message from a peer of the team page. Refusals are answered in `fx`.
    #[allow(clippy::too_many_arguments)]
    pub fn receive(
        &mut self,
        conn: ConnId,
        from: &PeerId,
        message: DocMessage,
        now: Instant,
        ops_allowed: &mut u64,
        fx: &mut Effects,
    ) {
        if !self.conns.contains(&conn) {
            let max = self.config.max_viewer_connections;
            if self.conns.len() >= max {
                let message = format!("this team is full: it takes {max} connections at once");
                fx.close.push((conn, Closing { message, reason: CloseReason::BOARD_FULL }));
                return;
            }
            self.conns.insert(conn);
        }
        let data = match message {
            DocMessage::Request(data) | DocMessage::Sync(data) => data,
            DocMessage::Resume => return self.ledger.resume(conn, from),
            // A team page relays nothing: there is no presence on a ledger.
            DocMessage::Ephemeral { .. } => return,
        };
        let mut guard = LedgerGuard { ledger: &mut self.cache, quota: &mut self.quota, touched: &mut self.touched };
        let received = match self.ledger.receive(conn, from, &data, now, ops_allowed, &mut guard) {
            Ok(received) => received,
            Err(e) => {
                let reason = if matches!(e, ReceiveError::TooCostly(_)) {
                    CloseReason::TOO_MUCH_WORK
                } else {
                    CloseReason::PROTOCOL
                };
                self.leave(conn);
                fx.close.push((conn, Closing { message: e.to_string(), reason }));
                return;
            }
        };
        if let Some((refusal, hashes)) = received.refused {
            tracing::debug!(team = %self.id.tag(), conn, changes = hashes.len(), reason = ?refusal.0, "refused changes");
            let count = self.refusals.entry(conn).or_insert(0);
            *count = count.saturating_add(u32::try_from(hashes.len()).unwrap_or(u32::MAX));
            if *count > MAX_REFUSALS_PER_CONNECTION {
                self.leave(conn);
                let message = format!("too many refused changes: at most {MAX_REFUSALS_PER_CONNECTION}");
                fx.close.push((conn, Closing { message, reason: CloseReason::TOO_MANY_REFUSALS }));
                return;
            }
            let notice = Notice::Refused { reason: refusal.0, changes: hashes.iter().map(|h| h.0).collect() };
            let message = self.notice(from, &notice);
            fx.send.push((conn, message));
        }
    }

    fn notice(&mut self, to: &PeerId, notice: &Notice) -> WireMessage {
        self.notices_sent += 1;
        WireMessage::Ephemeral {
            document_id: self.id,
            sender_id: self.server.clone(),
            target_id: to.clone(),
            session_id: self.server.to_string(),
            count: self.notices_sent,
            data: notice.encode(),
        }
    }

    /// Forgets a connection.
    pub fn leave(&mut self, conn: ConnId) {
        self.ledger.leave(conn);
        self.conns.remove(&conn);
        self.refusals.remove(&conn);
    }

    /// Writes as the server, and reads the whole ledger again (for the rare writes: a retro
    /// recorded, a review, a link, a key holder's change).
    fn write(
        &mut self,
        edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), SchemaError>,
    ) -> Result<(), SchemaError> {
        self.quota.used += self.ledger.write(edit)?;
        self.cache = Ledger::read(self.ledger.doc())?;
        Ok(())
    }

    /// A retro starts: lists it and answers the actions it reviews.
    pub fn new_board(&mut self, retro: Retro) -> Result<Vec<ReviewItem>, TeamError> {
        let (retros, actions) = (self.cache.retros.len(), self.cache.actions.len());
        if retros >= self.config.max_team_retros {
            return Err(TeamError::Full(format!(
                "this team holds {retros} retros, its most: a team key holder can remove old ones"
            )));
        }
        if actions >= self.config.max_team_actions {
            return Err(TeamError::Full(format!(
                "this team's ledger holds {actions} action items, its most: a team key holder can remove old retros"
            )));
        }
        let review = self.cache.open_actions();
        self.quota.used +=
            self.ledger.write(|tx| ledger::add_retro(tx, &retro)).map_err(|e| TeamError::Failed(e.to_string()))?;
        self.cache.retros.insert(retro.id.clone(), retro);
        Ok(review)
    }

    /// A retro of the team reached Done (or said so again). Returns the past causes its
    /// clusters are like, the best one per cluster, to offer to the board.
    pub fn finished(&mut self, finished: &Finished) -> Result<Vec<schema::Recurrence>, SchemaError> {
        if self.cache.removed.contains_key(&finished.board) {
            return Ok(Vec::new());
        }
        let mut offers = self.cache.suggestions(finished);
        let mut seen = HashSet::new();
        offers.retain(|o| seen.insert(o.cluster.clone()));
        let (cache, max) = (self.cache.clone(), self.config.max_team_actions);
        self.write(|tx| ledger::record(tx, &cache, finished, max))?;
        // What the review marked done gets its `done_at` in the next stamp.
        self.touched.extend(finished.reviewed.iter().map(|item| item.id.clone()));
        Ok(offers)
    }

    /// A retro's Review ended: the statuses it chose reach the ledger.
    pub fn reviewed(&mut self, board: &str, items: &[ReviewItem]) -> Result<(), SchemaError> {
        if self.cache.removed.contains_key(board) || !self.cache.retros.contains_key(board) {
            return Ok(());
        }
        let cache = self.cache.clone();
        self.write(|tx| ledger::apply_review(tx, &cache, items, false))?;
        self.touched.extend(items.iter().map(|item| item.id.clone()));
        Ok(())
    }

    /// A retro's facilitator confirmed a recurrence: the ledger links the two causes, and says
    /// whether the past one had been fixed.
    pub fn confirmed(&mut self, board: &str, cluster: &str, past: &str, now_ms: i64) -> Result<(), SchemaError> {
        let id = ledger::ledger_key(board, cluster);
        if self.cache.removed.contains_key(board)
            || !self.cache.causes.contains_key(&id)
            || !self.cache.causes.contains_key(past)
        {
            return Ok(());
        }
        if self.cache.links.contains_key(&id) {
            return Ok(());
        }
        let link = ledger::Link { id, past: past.to_owned(), after_fix: self.cache.is_fixed(past), at: now_ms };
        self.write(|tx| ledger::link(tx, &link))
    }

    /// A team key holder's change (the key is checked by the actor). `Ok(true)` when the team is
    /// to be deleted.
    pub fn manage(&mut self, change: &TeamChange) -> Result<bool, TeamError> {
        let failed = |e: SchemaError| TeamError::Failed(e.to_string());
        match change {
            TeamChange::Rename { name } => {
                let name = schema::clean_line(name);
                if name.is_empty() || name.chars().count() > MAX_TEAM_NAME_CHARS {
                    return Err(TeamError::Invalid(format!("a team name has 1 to {MAX_TEAM_NAME_CHARS} characters")));
                }
                self.write(|tx| ledger::rename(tx, &name)).map_err(failed)?;
            }
            TeamChange::RemoveBoard { board_id } => {
                if !self.cache.retros.contains_key(board_id) {
                    return Err(TeamError::Invalid("that retro is not in this team".into()));
                }
                let cache = self.cache.clone();
                self.write(|tx| ledger::remove_retro(tx, &cache, board_id)).map_err(failed)?;
            }
            TeamChange::Delete => return Ok(true),
        }
        Ok(false)
    }

    /// Stamps `done_at` on the actions peers marked done (and clears it on reopened ones).
    pub fn govern(&mut self, now_ms: i64) -> Result<(), SchemaError> {
        let touched: Vec<String> = self.touched.drain().collect();
        let stale: Vec<_> = touched
            .iter()
            .filter_map(|id| self.cache.actions.get(id))
            .filter(|a| (a.status == ledger::Status::Done) != a.done_at.is_some())
            .cloned()
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        // The stamps are known: the typed copy takes them without reading the ledger again (a
        // status flipped back and forth costs the stamps, not a read of thousands of actions).
        self.quota.used += self.ledger.write(|tx| {
            for action in &stale {
                ledger::stamp_done(tx, action, now_ms)?;
            }
            Ok(())
        })?;
        for action in stale {
            if let Some(cached) = self.cache.actions.get_mut(&action.id) {
                cached.done_at = (cached.status == ledger::Status::Done).then_some(now_ms);
            }
        }
        Ok(())
    }

    pub fn unsaved(&self) -> &[Change] {
        self.ledger.unsaved()
    }

    pub fn saved(&mut self) {
        self.ledger.saved();
    }

    /// The sync messages peers are owed.
    pub fn flush(&mut self, fx: &mut Effects) {
        self.ledger.flush(&self.server, &mut fx.send);
    }

    /// An empty presence notice to every peer: the heartbeat by which a team page tells a quiet
    /// connection from a dead one.
    pub fn heartbeat(&mut self, now_ms: i64, fx: &mut Effects) {
        let peers: Vec<(ConnId, PeerId)> = self.ledger.peers().map(|(c, p)| (c, p.clone())).collect();
        for (conn, peer) in peers {
            let notice = Notice::Presence { now_ms, you: None, participants: Vec::new(), full: true };
            let message = self.notice(&peer, &notice);
            fx.send.push((conn, message));
        }
    }
}
