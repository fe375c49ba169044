//! The sans-IO heart of a board: its document, its participants' desks, which connection is
//! whom, and the server's authority over all of it.
//!
//! Events go in ([`BoardCore::receive`], [`BoardCore::leave`], [`BoardCore::join`]) and effects
//! come out ([`Effects`]: frames to send, connections to close); the core never calls back into
//! its actor. The actor around it ([`super::actor`]) keeps the one ordering rule that makes
//! acknowledgements honest: it stores [`BoardCore::unsaved`] changes and calls
//! [`BoardCore::saved`] before it calls [`BoardCore::flush`], so no peer ever hears of a change
//! that is not on disk.
//!
//! Invariant (tidy: board-core-sans-io): the core, and the replicas, guards, desks, presence and
//! governor it uses, import nothing from the store, the registry, the connection, the routes or
//! the clock, and no tokio; it touches no clock (the actor passes `now` in) and no socket. Desks are loaded
//! by the actor when the core asks for them ([`BoardCore::wants_desk`],
//! [`BoardCore::desks_to_load`]).

use std::collections::HashMap;
use std::time::Instant;

use automerge::{ActorId, Automerge, Change};
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::presence::Notice;
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema::{self, Board, MIN_ROTI_RATERS, Phase, SchemaError};

use hindsight_shared::ledger::Finished;

use super::AdmitError;
use super::desk::{DeskSlot, Desks, LoadedDesk, Participant};
use super::govern::Governor;
use super::guards::{BoardGuard, DeskGuard, Quota};
use super::presence::{self, Presence};
use super::replica::{ConnId, Limits, LoadError, ReceiveError, Replica};
use crate::budget::TokenBucket;
use crate::closing::CloseReason;

/// A peer that keeps sending changes the rules refuse is disconnected after this many changes.
const MAX_REFUSALS_PER_CONNECTION: u32 = 50;
/// The largest ephemeral message relayed to a board's other peers.
pub const MAX_EPHEMERAL_BYTES: usize = 4 * 1024;
/// Ephemeral messages one connection may have relayed: a second's worth, and a burst.
const EPHEMERAL_RATE: f64 = 50.0;
const EPHEMERAL_BURST: f64 = 200.0;
/// Bytes a board relays to its peers in ephemeral messages, in all: a second's worth, and a burst.
const FANOUT_BYTES_RATE: f64 = 1024.0 * 1024.0;
const FANOUT_BYTES_BURST: f64 = 4.0 * 1024.0 * 1024.0;

/// A document message from a peer, as the board sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocMessage {
    /// The peer asks for the document; `data` is its first sync message.
    Request(Vec<u8>),
    /// An Automerge sync message.
    Sync(Vec<u8>),
    /// Transient data from a peer, relayed to the board's other peers.
    Ephemeral { session_id: String, count: u64, data: Vec<u8> },
    /// Cluster mode: the peer had the document open through the board's previous owner, which
    /// is gone. The board takes the peer as if it had asked, and its first sync message tells
    /// the peer to forget what it believed the server had, so that it sends again whatever the
    /// previous owner did not store.
    Resume,
}

/// What a board tells its team (the actor sends it as a `TeamMsg`, once it is stored).
#[derive(Debug, Clone, PartialEq)]
pub enum Told {
    /// The retro's Review ended, with what the group said of each action.
    Reviewed { board: String, items: Vec<schema::ReviewItem> },
    /// The retro is done, and this is what it came to.
    Finished(Box<Finished>),
    /// The facilitator confirmed that a cluster is a past cause come back.
    Confirmed { board: String, cluster: String, past: String },
}

/// A connection the core is done with: the `error` message it is sent, and how it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    pub message: String,
    pub reason: CloseReason,
}

/// What the core asks its actor to do.
#[derive(Debug, Default)]
pub struct Effects {
    /// Frames to send, in order.
    pub send: Vec<(ConnId, WireMessage)>,
    /// Connections to close, after the frames queued for them. The core has forgotten them.
    pub close: Vec<(ConnId, Closing)>,
}

/// The bounds a board keeps.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// How large one document may grow in storage, in bytes.
    pub max_document_bytes: usize,
    /// How large the board and all its desks may grow in storage, together.
    pub max_board_bytes: usize,
    /// How many connections of participants (who synced a desk) the board takes at once.
    pub max_participant_connections: usize,
    /// How many connections of viewers (who did not) the board takes at once.
    pub max_viewer_connections: usize,
    /// What one sync message may cost.
    pub limits: Limits,
    /// The fewest ratings the ROTI results are shown for (at least [`MIN_ROTI_RATERS`]).
    pub roti_min_raters: usize,
    /// How many retros, and action items, one team's ledger holds.
    pub max_team_retros: usize,
    pub max_team_actions: usize,
}

/// Loads desks off the actor's task: what a desk replica needs, without the core.
#[derive(Debug, Clone)]
pub struct DeskLoader {
    actor: ActorId,
    max_document_bytes: usize,
    limits: Limits,
}

impl DeskLoader {
    /// Rebuilds a desk from storage. CPU-bound: call it off the async runtime. A desk made by an
    /// older version gets the maps it lacks, stored with the next turn's changes, as a board does.
    pub fn load(&self, desk: DocumentId, snapshot: &[u8], changes: &[Vec<u8>]) -> Result<Replica, LoadError> {
        let mut replica =
            Replica::load(desk, self.actor.clone(), snapshot, changes, self.max_document_bytes, self.limits.clone())?;
        if let Err(e) = replica.write(|tx| schema::upgrade_desk(tx).map(drop)) {
            tracing::error!(desk = %desk.tag(), error = %e, "could not upgrade the desk");
        }
        Ok(replica)
    }
}

/// What a connection is to the board.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Viewer,
    /// Synced the desk of this participant.
    Participant(String),
}

/// One board: its document, its desks and its peers.
pub struct BoardCore {
    id: DocumentId,
    server: PeerId,
    actor: ActorId,
    board: Replica,
    /// The board as last read, kept in step with the document change by change.
    cache: Board,
    desks: Desks,
    /// Participant id -> desk id.
    participants: HashMap<String, DocumentId>,
    /// Every connection the board took, and what it is.
    conns: HashMap<ConnId, Role>,
    /// Participant ids of the connections that synced a desk (for presence).
    online: HashMap<ConnId, String>,
    refusals: HashMap<ConnId, u32>,
    relays: HashMap<ConnId, TokenBucket>,
    fanout: Option<TokenBucket>,
    governor: Governor,
    presence: Presence,
    notices_sent: u64,
    quota: Quota,
    config: CoreConfig,
    /// What the board has to tell its team, once what it did is stored.
    told: Vec<Told>,
    /// The team this board belongs to (from its record in storage, never from its document).
    team: Option<DocumentId>,
    /// What the board last told its team at Done, to tell it again only what changed (the
    /// ROTI published later, action items edited after reopening).
    sent: Option<Finished>,
    /// How many people wrote notes, counted when the retro reached Done with every desk loaded.
    writers: Option<i64>,
}

impl BoardCore {
    /// Rebuilds a board from a stored snapshot and changes, with its participants and the size
    /// of each one's desk in storage. Desks themselves are loaded later, when they are needed.
    /// CPU-bound: call it off the async runtime.
    pub fn load(
        id: DocumentId,
        server: PeerId,
        snapshot: &[u8],
        changes: &[Vec<u8>],
        participants: Vec<(Participant, usize)>,
        config: CoreConfig,
    ) -> Result<Self, LoadError> {
        let actor = ActorId::random();
        let mut board =
            Replica::load(id, actor.clone(), snapshot, changes, config.max_document_bytes, config.limits.clone())?;
        // A board made by an older version gets the maps it lacks; the change is stored with the
        // first turn's (it waits among the replica's unsaved changes).
        if let Err(e) = board.write(|tx| schema::upgrade_board(tx).map(drop)) {
            tracing::error!(board = %id.tag(), error = %e, "could not upgrade the board");
        }
        let cache = Board::read(board.doc()).unwrap_or_default();
        let used = board.bytes() + participants.iter().map(|(_, bytes)| bytes).sum::<usize>();
        let mut core = Self {
            id,
            server,
            actor,
            board,
            governor: Governor::new(cache.phase, config.roti_min_raters.max(MIN_ROTI_RATERS)),
            cache,
            desks: HashMap::new(),
            participants: HashMap::new(),
            conns: HashMap::new(),
            online: HashMap::new(),
            refusals: HashMap::new(),
            relays: HashMap::new(),
            fanout: None,
            presence: Presence::default(),
            notices_sent: 0,
            quota: Quota { used, max: config.max_board_bytes },
            config,
            told: Vec::new(),
            team: None,
            sent: None,
            writers: None,
        };
        for (participant, stored_bytes) in participants {
            core.participants.insert(participant.id.clone(), participant.desk);
            core.desks.insert(participant.desk, DeskSlot { participant, stored_bytes, loaded: None });
        }
        Ok(core)
    }

    pub fn id(&self) -> DocumentId {
        self.id
    }

    pub fn board(&self) -> &Board {
        &self.cache
    }

    /// The board's document (for tests, and the cost measurements).
    pub fn board_doc(&self) -> &Automerge {
        self.board.doc()
    }

    /// The desk document of a participant, if it is loaded: for tests.
    #[cfg(test)]
    pub fn desk_doc(&self, desk: DocumentId) -> Option<&Automerge> {
        self.desks.get(&desk)?.loaded.as_ref().map(|d| d.replica.doc())
    }

    /// True if `doc` is this board or one of its desks.
    pub fn holds(&self, doc: DocumentId) -> bool {
        doc == self.id || self.desks.contains_key(&doc)
    }

    /// True if `doc` is a desk of this board that is not in memory: load it before passing on
    /// a message about it.
    pub fn wants_desk(&self, doc: DocumentId) -> bool {
        self.desks.get(&doc).is_some_and(|slot| slot.loaded.is_none())
    }

    /// The desks to load before [`govern`](Self::govern): every desk not in memory, when the
    /// server is about to react to a new phase or a reveal (which look at every desk).
    pub fn desks_to_load(&self) -> Vec<DocumentId> {
        if !self.governor.needs_every_desk(&self.cache) {
            return Vec::new();
        }
        self.desks.iter().filter(|(_, slot)| slot.loaded.is_none()).map(|(id, _)| *id).collect()
    }

    /// What loading a desk needs, to do it off the actor's task.
    pub fn desk_loader(&self) -> DeskLoader {
        DeskLoader {
            actor: self.actor.clone(),
            max_document_bytes: self.config.max_document_bytes,
            limits: self.config.limits.clone(),
        }
    }

    /// Takes a desk loaded by the actor.
    pub fn insert_desk(&mut self, replica: Replica) {
        let Some(slot) = self.desks.get_mut(&replica.id()) else { return };
        if slot.loaded.is_some() {
            return;
        }
        self.quota.used = self.quota.used - slot.stored_bytes + replica.bytes();
        self.governor.desk_changed(replica.id());
        slot.loaded = Some(LoadedDesk::new(replica));
        self.presence.touch();
    }

    /// Adds someone who joined. The desk document is already stored, in `desk_bytes` bytes.
    /// Joining with the facilitator key makes them the facilitator.
    pub fn join(
        &mut self,
        participant: Participant,
        desk: Automerge,
        desk_bytes: usize,
        facilitator: bool,
    ) -> Result<(), SchemaError> {
        let id = participant.id.clone();
        let desk_id = participant.desk;
        let replica = Replica::new(
            desk_id,
            self.actor.clone(),
            desk,
            desk_bytes,
            self.config.max_document_bytes,
            self.config.limits.clone(),
        );
        self.participants.insert(id.clone(), desk_id);
        self.desks.insert(desk_id, DeskSlot { participant, stored_bytes: 0, loaded: None });
        self.insert_desk(replica);
        if facilitator && self.cache.facilitator.as_deref() != Some(id.as_str()) {
            self.quota.used += self.board.write(|tx| edit::hand_over(tx, &id))?;
            self.cache.facilitator = Some(id);
        }
        Ok(())
    }

    /// How many people joined the board.
    pub fn participant_count(&self) -> usize {
        self.participants.len()
    }

    /// Makes a participant the facilitator, who showed the facilitator key and proved who they
    /// are with their desk id.
    pub fn claim(&mut self, participant: &str, desk: DocumentId) -> Result<(), AdmitError> {
        if self.participants.get(participant) != Some(&desk) {
            return Err(AdmitError::NotJoined);
        }
        if self.cache.facilitator.as_deref() != Some(participant) {
            self.quota.used += self
                .board
                .write(|tx| edit::hand_over(tx, participant))
                .map_err(|e| AdmitError::Failed(e.to_string()))?;
            self.cache.facilitator = Some(participant.to_owned());
            self.presence.touch();
        }
        Ok(())
    }

    /// Takes one message from a peer about `doc` (this board or one of its desks, loaded).
    /// `ops_allowed` is how many operations the peer may still send; what the message carried
    /// is taken from it. Refusals are answered in `fx`; a message the connection cannot go on
    /// after closes it there.
    #[allow(clippy::too_many_arguments)]
    pub fn receive(
        &mut self,
        conn: ConnId,
        from: &PeerId,
        doc: DocumentId,
        message: DocMessage,
        now: Instant,
        ops_allowed: &mut u64,
        fx: &mut Effects,
    ) {
        if let Err(closing) = self.admit(conn, doc) {
            self.close(conn, closing, fx);
            return;
        }
        let data = match message {
            DocMessage::Request(data) | DocMessage::Sync(data) => data,
            DocMessage::Ephemeral { session_id, count, data } => {
                self.relay(conn, from, doc, session_id, count, data, now, fx);
                return;
            }
            DocMessage::Resume => {
                tracing::debug!(board = %self.id.tag(), conn, "a connection resumes here");
                if doc == self.id {
                    self.board.resume(conn, from);
                } else if let Some(desk) = self.desks.get_mut(&doc).and_then(|slot| slot.loaded.as_mut()) {
                    desk.replica.resume(conn, from);
                }
                return;
            }
        };
        let received = if doc == self.id {
            let mut guard = BoardGuard {
                who: self.online.get(&conn).map(String::as_str),
                board: &mut self.cache,
                participants: &self.participants,
                quota: &mut self.quota,
                publication_changed: false,
                roster_changed: false,
                confirmed: Vec::new(),
            };
            let received = self.board.receive(conn, from, &data, now, ops_allowed, &mut guard);
            if guard.publication_changed {
                self.governor.publication_changed();
            }
            if guard.roster_changed {
                self.presence.touch();
            }
            let confirmed = std::mem::take(&mut guard.confirmed);
            for cluster in confirmed {
                if let Some(offer) = self.cache.recurrences.get(&cluster).filter(|r| r.confirmed) {
                    let (board, past) = (self.id.to_string(), offer.past.clone());
                    self.told.push(Told::Confirmed { board, cluster, past });
                }
            }
            received
        } else {
            let Some(desk) = self.desks.get_mut(&doc).and_then(|slot| slot.loaded.as_mut()) else {
                // The actor loads a desk before it passes on a message about it.
                tracing::error!(board = %self.id.tag(), "a message about a desk that is not loaded");
                return;
            };
            let mut guard = DeskGuard { desk: &mut desk.cache, board: &self.cache, quota: &mut self.quota };
            let received = desk.replica.receive(conn, from, &data, now, ops_allowed, &mut guard);
            if received.as_ref().is_ok_and(|r| r.accepted > 0) {
                // A desk's drafts, votes and readiness show in the roster.
                self.governor.desk_changed(doc);
                self.presence.touch();
            }
            received
        };
        let received = match received {
            Ok(received) => received,
            Err(e) => {
                let reason = match e {
                    ReceiveError::TooCostly(_) => CloseReason::TOO_MUCH_WORK,
                    _ => CloseReason::PROTOCOL,
                };
                self.close(conn, Closing { message: e.to_string(), reason }, fx);
                return;
            }
        };
        if let Some((refusal, hashes)) = received.refused {
            let kind = if doc == self.id { "board" } else { "desk" };
            tracing::debug!(board = %self.id.tag(), conn, document = kind, changes = hashes.len(), reason = ?refusal.0, "refused changes");
            let count = self.refusals.entry(conn).or_insert(0);
            *count = count.saturating_add(u32::try_from(hashes.len()).unwrap_or(u32::MAX));
            if *count > MAX_REFUSALS_PER_CONNECTION {
                let message = format!("too many refused changes: at most {MAX_REFUSALS_PER_CONNECTION}");
                self.close(conn, Closing { message, reason: CloseReason::TOO_MANY_REFUSALS }, fx);
                return;
            }
            let notice = Notice::Refused { reason: refusal.0, changes: hashes.iter().map(|h| h.0).collect() };
            let message = self.notice(doc, from, &notice);
            fx.send.push((conn, message));
        }
    }

    /// Takes a connection in, or tells why not: a board keeps separate room for participants'
    /// connections and viewers', and a connection is at most one participant.
    fn admit(&mut self, conn: ConnId, doc: DocumentId) -> Result<(), Closing> {
        let desk_owner = self.desks.get(&doc).map(|slot| slot.participant.id.clone());
        let count = |role: &dyn Fn(&Role) -> bool| self.conns.values().filter(|r| role(r)).count();
        let full = |what: &str, max: usize| Closing {
            message: format!("this board is full: it takes {max} {what} at once"),
            reason: CloseReason::BOARD_FULL,
        };
        match (self.conns.get(&conn), desk_owner) {
            (Some(Role::Participant(id)), Some(owner)) if *id != owner => Err(Closing {
                message: "a connection syncs one participant's desk".into(),
                reason: CloseReason::PROTOCOL,
            }),
            (Some(Role::Participant(_)), _) | (Some(Role::Viewer), None) => Ok(()),
            (current, Some(owner)) => {
                let max = self.config.max_participant_connections;
                if count(&|r| matches!(r, Role::Participant(_))) >= max {
                    return Err(full("participants' connections", max));
                }
                if current.is_none() {
                    tracing::debug!(board = %self.id.tag(), conn, "a participant's desk is open");
                }
                self.conns.insert(conn, Role::Participant(owner.clone()));
                self.online.insert(conn, owner);
                self.presence.touch();
                Ok(())
            }
            (None, None) => {
                let max = self.config.max_viewer_connections;
                if count(&|r| *r == Role::Viewer) >= max {
                    return Err(full("viewers", max));
                }
                self.conns.insert(conn, Role::Viewer);
                Ok(())
            }
        }
    }

    /// Relays a peer's ephemeral message to the board's other peers: small ones only, at a
    /// bounded rate per connection and in all, with the sender's id as it joined.
    #[allow(clippy::too_many_arguments)]
    fn relay(
        &mut self,
        conn: ConnId,
        from: &PeerId,
        doc: DocumentId,
        session_id: String,
        count: u64,
        data: Vec<u8>,
        now: Instant,
        fx: &mut Effects,
    ) {
        if doc != self.id || data.len() > MAX_EPHEMERAL_BYTES {
            return;
        }
        let others: Vec<(ConnId, PeerId)> =
            self.board.peers().filter(|(other, _)| *other != conn).map(|(c, p)| (c, p.clone())).collect();
        let bytes = (data.len() * others.len()) as f64;
        let rate = self.relays.entry(conn).or_insert_with(|| TokenBucket::new(EPHEMERAL_RATE, EPHEMERAL_BURST, now));
        let fanout = self.fanout.get_or_insert_with(|| TokenBucket::new(FANOUT_BYTES_RATE, FANOUT_BYTES_BURST, now));
        if !rate.take(1.0, now) || !fanout.take(bytes, now) {
            tracing::debug!(board = %self.id.tag(), conn, "dropped an ephemeral message over the relay budget");
            return;
        }
        for (other, peer) in others {
            fx.send.push((
                other,
                WireMessage::Ephemeral {
                    document_id: doc,
                    sender_id: from.clone(),
                    target_id: peer,
                    session_id: session_id.clone(),
                    count,
                    data: data.clone(),
                },
            ));
        }
    }

    fn notice(&mut self, doc: DocumentId, to: &PeerId, notice: &Notice) -> WireMessage {
        self.notices_sent += 1;
        WireMessage::Ephemeral {
            document_id: doc,
            sender_id: self.server.clone(),
            target_id: to.clone(),
            session_id: self.server.to_string(),
            count: self.notices_sent,
            data: notice.encode(),
        }
    }

    /// Forgets a connection and asks the actor to close it.
    fn close(&mut self, conn: ConnId, closing: Closing, fx: &mut Effects) {
        self.leave(conn);
        fx.close.push((conn, closing));
    }

    /// Forgets a connection that closed (or that the actor dropped).
    pub fn leave(&mut self, conn: ConnId) {
        self.board.leave(conn);
        for desk in self.desks.values_mut().filter_map(|slot| slot.loaded.as_mut()) {
            desk.replica.leave(conn);
        }
        self.conns.remove(&conn);
        if self.online.remove(&conn).is_some() {
            self.presence.touch();
        }
        self.refusals.remove(&conn);
        self.relays.remove(&conn);
        self.presence.leave(conn);
    }

    /// The server's own reactions to the state the peers left (see [`super::govern`]). Every
    /// desk [`desks_to_load`](Self::desks_to_load) named should be loaded by now.
    pub fn govern(&mut self, now_ms: i64) -> Result<(), SchemaError> {
        let governed = self.governor.govern(&mut self.board, &mut self.cache, &mut self.desks, now_ms)?;
        self.quota.used += governed.bytes;
        if governed.roster_changed {
            self.presence.touch();
        }
        if self.team.is_some() {
            if governed.left == Some(Phase::Review) {
                let items = self.cache.review.values().cloned().collect();
                self.told.push(Told::Reviewed { board: self.id.to_string(), items });
            }
            if self.cache.phase == Phase::Done {
                if governed.left.is_some() {
                    let writers = self
                        .desks
                        .values()
                        .filter(|slot| slot.loaded.as_ref().is_some_and(|d| !d.cache.drafts.is_empty()))
                        .count() as i64;
                    self.writers = Some(writers);
                }
                self.tell_finished(now_ms);
            }
        }
        Ok(())
    }

    /// Tells the team what the retro came to, if that changed since it last told it.
    fn tell_finished(&mut self, now_ms: i64) {
        let finished = Finished::of(&self.id.to_string(), &self.cache, now_ms, self.writers);
        let same = self.sent.as_ref().is_some_and(|sent| Finished { done_at: now_ms, ..sent.clone() } == finished);
        if !same {
            self.sent = Some(finished.clone());
            self.told.push(Told::Finished(Box::new(finished)));
        }
    }

    /// The board belongs to `team` (as its record in storage says). A finished retro tells it
    /// again what it came to and which causes it confirmed, when it loads: the team may not have
    /// stored them before a crash (both are idempotent there). Who wrote is not known without
    /// the desks; the team keeps what it was told before.
    pub fn belongs_to(&mut self, team: DocumentId, now_ms: i64) {
        self.team = Some(team);
        if self.cache.phase == Phase::Done {
            self.tell_finished(now_ms);
            for offer in self.cache.recurrences.values().filter(|r| r.confirmed) {
                let (board, cluster, past) = (self.id.to_string(), offer.cluster.clone(), offer.past.clone());
                self.told.push(Told::Confirmed { board, cluster, past });
            }
        }
    }

    /// The team offers the past causes this board's clusters are like; each cluster keeps the
    /// first offer it got (a re-sent offer does not undo a confirmation).
    pub fn offer(&mut self, offers: Vec<schema::Recurrence>) -> Result<(), SchemaError> {
        let fresh: Vec<schema::Recurrence> = offers
            .into_iter()
            .filter(|o| {
                self.cache.clusters.contains_key(&o.cluster) && !self.cache.recurrences.contains_key(&o.cluster)
            })
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        self.quota.used += self.board.write(|tx| edit::offer_recurrences(tx, &fresh))?;
        for offer in fresh {
            self.cache.recurrences.insert(offer.cluster.clone(), offer);
        }
        Ok(())
    }

    /// Adds an alert webhook's events to the timeline (those not there yet, within the board's
    /// room); returns how many were new.
    pub fn add_alerts(&mut self, events: Vec<hindsight_shared::timeline::Event>) -> Result<usize, SchemaError> {
        let room = hindsight_shared::timeline::MAX_EVENTS_PER_BOARD.saturating_sub(self.cache.timeline.len());
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<_> = events
            .into_iter()
            .filter(|e| !self.cache.timeline.contains_key(&e.id) && seen.insert(e.id.clone()))
            .take(room)
            .collect();
        if fresh.is_empty() {
            return Ok(0);
        }
        self.quota.used += self.board.write(|tx| {
            for event in &fresh {
                edit::publish_event(tx, event)?;
            }
            Ok(())
        })?;
        let added = fresh.len();
        for event in fresh {
            self.cache.timeline.insert(event.id.clone(), event);
        }
        Ok(added)
    }

    /// The team this board belongs to, and what it has to tell it (once what it did is stored).
    pub fn take_told(&mut self) -> Option<(DocumentId, Vec<Told>)> {
        let team = self.team?;
        (!self.told.is_empty()).then(|| (team, std::mem::take(&mut self.told)))
    }

    /// The changes accepted or written since the last [`saved`](Self::saved), per document.
    pub fn unsaved(&self) -> Vec<(DocumentId, &[Change])> {
        std::iter::once(&self.board)
            .chain(self.desks.values().filter_map(|slot| slot.loaded.as_ref()).map(|d| &d.replica))
            .map(|replica| (replica.id(), replica.unsaved()))
            .filter(|(_, changes)| !changes.is_empty())
            .collect()
    }

    /// Records that everything [`unsaved`](Self::unsaved) returned is durable.
    pub fn saved(&mut self) {
        self.board.saved();
        for desk in self.desks.values_mut().filter_map(|slot| slot.loaded.as_mut()) {
            desk.replica.saved();
        }
    }

    /// Generates the sync messages peers are owed, and the presence roster for whoever is owed
    /// one. Returns when to flush again for a roster change that waits for its interval.
    pub fn flush(&mut self, now: Instant, now_ms: i64, fx: &mut Effects) -> Option<Instant> {
        self.board.flush(&self.server, &mut fx.send);
        for desk in self.desks.values_mut().filter_map(|slot| slot.loaded.as_mut()) {
            desk.replica.flush(&self.server, &mut fx.send);
        }
        let (cache, desks, online) = (&self.cache, &self.desks, &self.online);
        let peers: Vec<(ConnId, PeerId)> = self.board.peers().map(|(conn, peer)| (conn, peer.clone())).collect();
        let (updates, wake) =
            self.presence.flush(now, peers.iter().map(|(conn, _)| *conn), || presence::roster(cache, desks, online));
        for update in updates {
            let Some((_, peer)) = peers.iter().find(|(conn, _)| *conn == update.conn) else { continue };
            let notice = Notice::Presence {
                now_ms,
                you: self.online.get(&update.conn).cloned(),
                participants: update.entries,
                full: update.full,
            };
            let message = self.notice(self.id, peer, &notice);
            fx.send.push((update.conn, message));
        }
        wake
    }
}
