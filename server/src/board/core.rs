//! The sans-IO heart of a board: its document, its participants' desks, who is connected as
//! whom, and the server's authority over all of it.
//!
//! Messages go in ([`BoardCore::receive`]), messages come out ([`BoardCore::flush`]); nothing here
//! touches a socket, a clock or the disk (the actor passes the time in). The actor around it
//! ([`super::actor`]) keeps the one ordering rule that makes acknowledgements honest: it stores
//! [`BoardCore::unsaved`] changes and calls [`BoardCore::saved`] before it calls `flush`, so no
//! peer ever hears of a change that is not on disk.
//!
//! Anonymity: notes reach the board document only through [`BoardCore::govern`], written by the
//! server's actor, in one change per pass with notes ordered by an id derived from a secret. The
//! author of a note is known here (its desk) and nowhere in any document a peer receives.

use std::collections::{BTreeMap, HashMap, HashSet};

use automerge::{ActorId, Automerge, Change};
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, PeerId, published_note_id};
use hindsight_shared::presence::{Notice, PresenceEntry};
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::rules::{self, Refusal, Role};
use hindsight_shared::schema::{Board, Desk, MAX_NOTES_PER_BOARD, Note, Phase, SchemaError};

use super::replica::{LoadError, ReceiveError, Received, Replica};
use crate::store::{StoredChange, StoredDoc};

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;

/// A peer that keeps sending changes the rules refuse is disconnected after this many.
const MAX_REFUSALS_PER_CONNECTION: u32 = 50;

/// A document message from a peer, as the board sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocMessage {
    /// The peer asks for the document; `data` is its first sync message.
    Request(Vec<u8>),
    /// An Automerge sync message.
    Sync(Vec<u8>),
    /// Transient data from a peer, relayed to the board's other peers.
    Ephemeral { session_id: String, count: u64, data: Vec<u8> },
}

/// A message the connection cannot go on after: the actor sends it as an `error` and closes.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error(transparent)]
    Receive(#[from] ReceiveError),
    #[error("{0}")]
    Protocol(String),
}

/// Someone who joined the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Public: shown in presence, never written on notes.
    pub id: String,
    pub name: String,
    /// Secret: the id of their desk document.
    pub desk: DocumentId,
}

struct DeskEntry {
    participant: String,
    replica: Replica,
    /// The desk as last read, to compare each change against.
    cache: Desk,
    /// Draft id -> the id it is published under (a hash, worth remembering).
    note_ids: HashMap<String, String>,
    /// The notes on the board that come from this desk.
    live: HashSet<String>,
}

/// One board: its document, its desks and its peers.
pub struct BoardCore {
    id: DocumentId,
    server: PeerId,
    actor: ActorId,
    board: Replica,
    /// The board as last read, to compare each change against.
    cache: Board,
    desks: HashMap<DocumentId, DeskEntry>,
    participants: HashMap<String, Participant>,
    /// Which participant each connection synced a desk as.
    identities: HashMap<ConnId, String>,
    refusals: HashMap<ConnId, u32>,
    /// The phase the server last reacted to.
    governed_phase: Phase,
    /// Desks changed since the last publication pass.
    dirty: HashSet<DocumentId>,
    /// What decides publication changed (phase, reveals, anonymity): look at every desk.
    publish_all: bool,
    /// The roster last sent, and to whom.
    roster: Vec<PresenceEntry>,
    roster_sent_to: HashSet<ConnId>,
    /// Something the roster shows may have changed since it was last built.
    roster_stale: bool,
    notices_sent: u64,
    /// How large each document may grow in storage, in bytes.
    max_document_bytes: usize,
}

impl BoardCore {
    /// Rebuilds a board and its desks from what the store holds. CPU-bound: call it off the
    /// async runtime.
    pub fn load(
        id: DocumentId,
        server: PeerId,
        stored: &StoredDoc,
        desks: Vec<(Participant, StoredDoc)>,
        max_document_bytes: usize,
    ) -> Result<Self, LoadError> {
        let actor = ActorId::random();
        let started = std::time::Instant::now();
        let board = Replica::load(id, actor.clone(), stored, max_document_bytes)?;
        let loaded = std::time::Instant::now();
        let cache = Board::read(board.doc()).unwrap_or_default();
        let cached = std::time::Instant::now();
        let mut core = Self {
            id,
            server,
            actor,
            board,
            governed_phase: cache.phase,
            dirty: HashSet::new(),
            publish_all: true,
            cache,
            desks: HashMap::new(),
            participants: HashMap::new(),
            identities: HashMap::new(),
            refusals: HashMap::new(),
            roster: Vec::new(),
            roster_sent_to: HashSet::new(),
            roster_stale: true,
            notices_sent: 0,
            max_document_bytes,
        };
        for (participant, stored) in desks {
            let replica = Replica::load(participant.desk, core.actor.clone(), &stored, max_document_bytes)?;
            core.add_desk(participant, replica);
        }
        tracing::debug!(
            board = %id,
            board_load_ms = loaded.duration_since(started).as_millis() as u64,
            board_read_ms = cached.duration_since(loaded).as_millis() as u64,
            desks_ms = cached.elapsed().as_millis() as u64,
            desks = core.desks.len(),
            stored_changes = stored.changes.len(),
            "board rebuilt from storage"
        );
        Ok(core)
    }

    fn add_desk(&mut self, participant: Participant, replica: Replica) {
        let cache = Desk::read(replica.doc()).unwrap_or_default();
        let entry = DeskEntry {
            participant: participant.id.clone(),
            replica,
            cache,
            note_ids: HashMap::new(),
            live: HashSet::new(),
        };
        self.dirty.insert(participant.desk);
        self.roster_stale = true;
        self.desks.insert(participant.desk, entry);
        self.participants.insert(participant.id.clone(), participant);
    }

    pub fn id(&self) -> DocumentId {
        self.id
    }

    pub fn board(&self) -> &Board {
        &self.cache
    }

    pub fn board_doc(&self) -> &Automerge {
        self.board.doc()
    }

    /// The desk document of a participant, for tests and exports that need the author's view.
    pub fn desk_doc(&self, desk: DocumentId) -> Option<&Automerge> {
        self.desks.get(&desk).map(|d| d.replica.doc())
    }

    pub fn has_peers(&self) -> bool {
        self.board.peers().next().is_some() || self.desks.values().any(|d| d.replica.peers().next().is_some())
    }

    /// True if `doc` is this board or one of its desks.
    pub fn holds(&self, doc: DocumentId) -> bool {
        doc == self.id || self.desks.contains_key(&doc)
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
        let replica = Replica::new(participant.desk, self.actor.clone(), desk, desk_bytes, self.max_document_bytes);
        self.add_desk(participant, replica);
        if facilitator && self.cache.facilitator.as_deref() != Some(id.as_str()) {
            self.board.write(|tx| edit::hand_over(tx, &id))?;
            self.refresh_board()?;
        }
        Ok(())
    }

    fn refresh_board(&mut self) -> Result<(), SchemaError> {
        self.cache = Board::read(self.board.doc())?;
        Ok(())
    }

    fn role(&self, conn: ConnId) -> Role {
        match self.identities.get(&conn) {
            Some(id) if self.cache.facilitator.as_deref() == Some(id.as_str()) => Role::Facilitator,
            Some(_) => Role::Participant,
            None => Role::Viewer,
        }
    }

    /// Takes one message from a peer about `doc` (this board or one of its desks). Refusals of
    /// changes are answered in `out`; an error ends the connection.
    pub fn receive(
        &mut self,
        conn: ConnId,
        from: &PeerId,
        doc: DocumentId,
        message: DocMessage,
        out: &mut Vec<(ConnId, WireMessage)>,
    ) -> Result<(), ConnError> {
        let data = match message {
            DocMessage::Request(data) | DocMessage::Sync(data) => data,
            DocMessage::Ephemeral { session_id, count, data } => {
                self.relay(conn, from, doc, session_id, count, data, out);
                return Ok(());
            }
        };
        let received = if doc == self.id {
            self.receive_board(conn, from, &data)?
        } else {
            self.receive_desk(conn, from, doc, &data)?
        };
        // Acknowledgements change nothing the roster shows; accepted changes may.
        self.roster_stale |= received.accepted > 0;
        if let Some((refusal, hashes)) = received.refused {
            tracing::info!(board = %self.id, %doc, conn, peer = %from, reason = %refusal, "refused changes");
            let count = self.refusals.entry(conn).or_insert(0);
            *count += 1;
            if *count > MAX_REFUSALS_PER_CONNECTION {
                return Err(ConnError::Protocol("too many refused changes".into()));
            }
            let notice = Notice::Refused { reason: refusal.0, changes: hashes.iter().map(|h| h.0).collect() };
            out.push((conn, self.notice(doc, from, &notice)));
        }
        Ok(())
    }

    fn receive_board(&mut self, conn: ConnId, from: &PeerId, data: &[u8]) -> Result<Received, ConnError> {
        let role = self.role(conn);
        let participants = &self.participants;
        let cache = &mut self.cache;
        let decides = |b: &Board| (b.phase, b.revealed.clone(), b.settings.anonymous);
        let before = decides(cache);
        let received = self
            .board
            .receive(conn, from, data, |doc, change| check_board_change(role, participants, cache, doc, change))?;
        if decides(cache) != before {
            self.publish_all = true;
        }
        Ok(received)
    }

    fn receive_desk(
        &mut self,
        conn: ConnId,
        from: &PeerId,
        doc: DocumentId,
        data: &[u8],
    ) -> Result<Received, ConnError> {
        let Some(entry) = self.desks.get_mut(&doc) else {
            return Err(ConnError::Protocol(format!("document {doc} is not part of this board")));
        };
        match self.identities.get(&conn) {
            Some(id) if *id != entry.participant => {
                return Err(ConnError::Protocol("a connection syncs one participant's desk".into()));
            }
            Some(_) => {}
            None => {
                tracing::debug!(board = %self.id, conn, participant = %entry.participant, "a participant's desk is open");
                self.identities.insert(conn, entry.participant.clone());
                self.roster_stale = true;
            }
        }
        let board = &self.cache;
        let DeskEntry { replica, cache, .. } = entry;
        let received = replica.receive(conn, from, data, |doc, change| {
            for (path, write) in rules::written_paths(doc, change)? {
                rules::check_desk_write(&path, write)?;
            }
            let after = Desk::read(doc).map_err(|e| Refusal(format!("the desk would be malformed: {e}")))?;
            rules::check_desk_state(cache, &after, board)?;
            *cache = after;
            Ok(())
        })?;
        if received.accepted > 0 {
            self.dirty.insert(doc);
        }
        Ok(received)
    }

    /// Relays a peer's ephemeral message to the document's other peers.
    #[allow(clippy::too_many_arguments)]
    fn relay(
        &self,
        conn: ConnId,
        from: &PeerId,
        doc: DocumentId,
        session_id: String,
        count: u64,
        data: Vec<u8>,
        out: &mut Vec<(ConnId, WireMessage)>,
    ) {
        if doc != self.id {
            return;
        }
        for (other, peer) in self.board.peers() {
            if other != conn {
                out.push((
                    other,
                    WireMessage::Ephemeral {
                        document_id: doc,
                        sender_id: from.clone(),
                        target_id: peer.clone(),
                        session_id: session_id.clone(),
                        count,
                        data: data.clone(),
                    },
                ));
            }
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

    /// Forgets a connection that closed.
    pub fn leave(&mut self, conn: ConnId) {
        self.board.leave(conn);
        for desk in self.desks.values_mut() {
            desk.replica.leave(conn);
        }
        self.identities.remove(&conn);
        self.refusals.remove(&conn);
        self.roster_sent_to.remove(&conn);
        self.roster_stale = true;
    }

    /// The server's own reactions to the state the peers left: publishes revealed notes (and
    /// their edits and deletions), counts votes when voting closes, and clears everyone's
    /// "ready" when the phase changes.
    pub fn govern(&mut self, now_ms: i64) -> Result<(), SchemaError> {
        if self.cache.phase != self.governed_phase {
            self.governed_phase = self.cache.phase;
            for desk in self.desks.values_mut() {
                if desk.cache.ready {
                    desk.replica.write(|tx| edit::set_ready(tx, false))?;
                    desk.cache.ready = false;
                    self.roster_stale = true;
                }
            }
        }
        self.publish(now_ms)?;
        self.count_votes()?;
        Ok(())
    }

    /// Brings the board's notes in line with the desks: a draft is published once its column is
    /// revealed (and stays published), follows its draft's edits, and goes when the draft goes.
    /// Looks only at desks that changed, unless what decides publication changed.
    fn publish(&mut self, now_ms: i64) -> Result<(), SchemaError> {
        let targets: Vec<DocumentId> = if std::mem::take(&mut self.publish_all) {
            self.dirty.clear();
            self.desks.keys().copied().collect()
        } else {
            self.dirty.drain().collect()
        };
        let board = &self.cache;
        let mut changed: Vec<Note> = Vec::new();
        let mut stale: Vec<String> = Vec::new();
        // Drafts beyond what a board holds stay on their desks, unpublished (the desks refuse new
        // drafts once the board is full, but a crowd can fill it in private before the reveal).
        let mut room = MAX_NOTES_PER_BOARD.saturating_sub(board.notes.len());
        for desk_id in targets {
            let Some(desk) = self.desks.get_mut(&desk_id) else { continue };
            let author = (!board.settings.anonymous)
                .then(|| self.participants.get(&desk.participant).map(|p| p.name.clone()))
                .flatten()
                .filter(|name| !name.trim().is_empty());
            let mut live = HashSet::with_capacity(desk.live.len());
            for draft in desk.cache.drafts.values() {
                let id = desk
                    .note_ids
                    .entry(draft.id.clone())
                    .or_insert_with(|| published_note_id(&desk_id, &draft.id))
                    .clone();
                let current = board.notes.get(&id);
                let due = current.is_some() || (board.phase != Phase::Write && board.is_revealed(&draft.column));
                if !due {
                    continue;
                }
                let note = Note {
                    id: id.clone(),
                    column: draft.column.clone(),
                    text: draft.text.clone(),
                    // Publication time, not writing time: the writer's clock says nothing here.
                    created_at: current.map_or(now_ms, |n| n.created_at),
                    cluster: current.and_then(|n| n.cluster.clone()),
                    author: author.clone(),
                };
                if current.is_none() {
                    if room == 0 {
                        continue;
                    }
                    room -= 1;
                }
                if current != Some(&note) {
                    changed.push(note);
                }
                live.insert(id);
            }
            stale.extend(desk.live.difference(&live).filter(|id| board.notes.contains_key(*id)).cloned());
            desk.live = live;
            let drafts = &desk.cache.drafts;
            desk.note_ids.retain(|draft, _| drafts.contains_key(draft));
        }
        if stale.is_empty() && changed.is_empty() {
            return Ok(());
        }
        // One change for the whole pass, notes in id order: nothing in it groups notes by author.
        changed.sort_by(|a, b| a.id.cmp(&b.id));
        stale.sort();
        let cache = &self.cache;
        self.board.write(|tx| {
            for note in &changed {
                edit::write_note(tx, cache.notes.get(&note.id), note)?;
            }
            for id in &stale {
                edit::unpublish_note(tx, id)?;
            }
            Ok(())
        })?;
        // The cache follows exactly what was written, without reading the board again.
        for id in &stale {
            self.cache.notes.remove(id);
        }
        for note in changed {
            self.cache.notes.insert(note.id.clone(), note);
        }
        Ok(())
    }

    /// Writes the vote totals once voting is closed, and clears them if voting reopens.
    fn count_votes(&mut self) -> Result<(), SchemaError> {
        let board = &self.cache;
        let counted = !board.vote_totals.is_empty();
        if (board.phase > Phase::Vote) == counted {
            // Counted once when voting closed (nobody votes after that), or nothing to clear.
            return Ok(());
        }
        let totals: BTreeMap<String, i64> = if board.phase > Phase::Vote {
            let mut totals: BTreeMap<String, i64> =
                board.vote_items().iter().map(|item| (item.id().to_owned(), 0)).collect();
            for desk in self.desks.values() {
                for (item, dots) in &desk.cache.votes {
                    if let Some(total) = totals.get_mut(item) {
                        *total += dots;
                    }
                }
            }
            totals
        } else {
            BTreeMap::new()
        };
        if totals == board.vote_totals {
            return Ok(());
        }
        self.board.write(|tx| edit::set_vote_totals(tx, &totals))?;
        self.refresh_board()
    }

    /// The roster as it stands.
    fn current_roster(&self) -> Vec<PresenceEntry> {
        let online: HashSet<&String> = self.identities.values().collect();
        let phase = self.cache.phase;
        let mut roster: Vec<PresenceEntry> = self
            .desks
            .values()
            .filter_map(|desk| {
                let participant = self.participants.get(&desk.participant)?;
                Some(PresenceEntry {
                    id: participant.id.clone(),
                    name: participant.name.clone(),
                    facilitator: self.cache.facilitator.as_deref() == Some(participant.id.as_str()),
                    online: online.contains(&participant.id),
                    notes: (phase == Phase::Write).then_some(desk.cache.drafts.len() as u32),
                    voted: phase == Phase::Vote && (!desk.cache.votes.is_empty() || desk.cache.abstain),
                    ready: desk.cache.ready,
                })
            })
            .collect();
        roster.sort_by_cached_key(|p| (!p.online, p.name.to_lowercase(), p.id.clone()));
        roster
    }

    /// The changes accepted or written since the last [`saved`](Self::saved), per document.
    pub fn unsaved(&self) -> Vec<(DocumentId, Vec<StoredChange>)> {
        std::iter::once(&self.board)
            .chain(self.desks.values().map(|d| &d.replica))
            .map(|replica| (replica.id(), replica.unsaved()))
            .filter(|(_, changes)| !changes.is_empty())
            .collect()
    }

    /// Records that everything [`unsaved`](Self::unsaved) returned is durable.
    pub fn saved(&mut self) {
        self.board.saved();
        for desk in self.desks.values_mut() {
            desk.replica.saved();
        }
    }

    /// Generates the sync messages peers are owed, and the roster for whoever has not seen the
    /// latest one.
    pub fn flush(&mut self, now_ms: i64, out: &mut Vec<(ConnId, WireMessage)>) {
        self.board.flush(&self.server, out);
        for desk in self.desks.values_mut() {
            desk.replica.flush(&self.server, out);
        }
        if std::mem::take(&mut self.roster_stale) {
            let roster = self.current_roster();
            if roster != self.roster {
                self.roster = roster;
                self.roster_sent_to.clear();
            }
        }
        let recipients: Vec<(ConnId, PeerId)> = self
            .board
            .peers()
            .filter(|(conn, _)| !self.roster_sent_to.contains(conn))
            .map(|(conn, peer)| (conn, peer.clone()))
            .collect();
        for (conn, peer) in recipients {
            let notice = Notice::Presence {
                now_ms,
                you: self.identities.get(&conn).cloned(),
                participants: self.roster.clone(),
            };
            let message = self.notice(self.id, &peer, &notice);
            out.push((conn, message));
            self.roster_sent_to.insert(conn);
        }
    }
}

/// Checks one change a peer made to the board: every write against the rules for its role and
/// the phase, then the resulting board against the one before.
fn check_board_change(
    role: Role,
    participants: &HashMap<String, Participant>,
    cache: &mut Board,
    doc: &Automerge,
    change: &Change,
) -> Result<(), Refusal> {
    for (path, write) in rules::written_paths(doc, change)? {
        rules::check_board_write(role, cache.phase, &path, write)?;
    }
    let after = Board::read(doc).map_err(|e| Refusal(format!("the board would be malformed: {e}")))?;
    rules::check_board_state(cache, &after, |id| participants.contains_key(id))?;
    *cache = after;
    Ok(())
}

#[cfg(test)]
mod tests {
    use automerge::sync::{self, SyncDoc};
    use hindsight_shared::edit;
    use hindsight_shared::schema::MAX_DRAFTS_PER_DESK;
    use hindsight_shared::schema::{self, Draft};
    use hindsight_shared::templates;

    use super::*;

    /// A browser in memory: the board and its desk, each with a sync state.
    struct Client {
        conn: ConnId,
        peer: PeerId,
        desk_id: DocumentId,
        board: Automerge,
        board_sync: sync::State,
        desk: Automerge,
        desk_sync: sync::State,
        notices: Vec<Notice>,
        /// Cut off from the server: sends nothing, receives nothing.
        offline: bool,
    }

    /// The core and its clients, delivering every message until nobody has anything to say, and
    /// saving before every flush as the actor does.
    struct Net {
        core: BoardCore,
        clients: Vec<Client>,
        now: i64,
    }

    impl Net {
        fn new() -> Self {
            let template = templates::find("mad-sad-glad").expect("template");
            let doc = schema::new_board_document(ActorId::random(), "Retro", template).expect("board");
            let stored = StoredDoc { snapshot: doc.save(), changes: vec![] };
            let core =
                BoardCore::load(DocumentId::random(), "server".into(), &stored, vec![], usize::MAX).expect("load");
            Self { core, clients: Vec::new(), now: 1_000 }
        }

        fn join(&mut self, name: &str, facilitator: bool) -> usize {
            let desk_id = DocumentId::random();
            let desk = schema::new_desk_document(ActorId::random()).expect("desk");
            let participant = Participant { id: format!("p-{name}"), name: name.into(), desk: desk_id };
            self.core.join(participant, desk, 0, facilitator).expect("join");
            let conn = self.clients.len() as ConnId;
            self.clients.push(Client {
                conn,
                peer: PeerId::from(format!("browser-{name}")),
                desk_id,
                board: Automerge::new(),
                board_sync: sync::State::new(),
                desk: Automerge::new(),
                desk_sync: sync::State::new(),
                notices: Vec::new(),
                offline: false,
            });
            self.settle();
            conn as usize
        }

        fn settle(&mut self) {
            let board_id = self.core.id();
            for _ in 0..50 {
                let mut quiet = true;
                let mut out = Vec::new();
                for client in self.clients.iter_mut().filter(|c| !c.offline) {
                    // The desk first, as the browser does, so the connection is known before it
                    // writes to the board.
                    if let Some(m) = client.desk.generate_sync_message(&mut client.desk_sync) {
                        quiet = false;
                        let message = DocMessage::Sync(m.encode());
                        self.core.receive(client.conn, &client.peer, client.desk_id, message, &mut out).expect("desk");
                    }
                    if let Some(m) = client.board.generate_sync_message(&mut client.board_sync) {
                        quiet = false;
                        let message = DocMessage::Sync(m.encode());
                        self.core.receive(client.conn, &client.peer, board_id, message, &mut out).expect("board");
                    }
                }
                self.core.govern(self.now).expect("govern");
                self.core.saved();
                self.core.flush(self.now, &mut out);
                for (conn, message) in out {
                    let client = &mut self.clients[conn as usize];
                    if client.offline {
                        continue;
                    }
                    match message {
                        WireMessage::Sync { document_id, data, .. } => {
                            quiet = false;
                            let m = sync::Message::decode(&data).expect("decode");
                            if document_id == board_id {
                                client.board.receive_sync_message(&mut client.board_sync, m).expect("apply");
                            } else {
                                client.desk.receive_sync_message(&mut client.desk_sync, m).expect("apply");
                            }
                        }
                        WireMessage::Ephemeral { document_id, data, .. } => {
                            let notice = Notice::decode(&data).expect("a notice");
                            if let Notice::Refused { changes, .. } = &notice {
                                // What the browser does: forget the refused changes, resync.
                                let doc = if document_id == board_id { &mut client.board } else { &mut client.desk };
                                let kept: Vec<_> = doc
                                    .get_changes(&[])
                                    .into_iter()
                                    .filter(|c| !changes.contains(&c.hash().0))
                                    .collect();
                                let mut rebuilt = Automerge::new();
                                rebuilt.apply_changes(kept).expect("rebuild");
                                *doc = rebuilt;
                                client.board_sync = sync::State::new();
                                client.desk_sync = sync::State::new();
                                quiet = false;
                            }
                            client.notices.push(notice);
                        }
                        _ => {}
                    }
                }
                if quiet {
                    return;
                }
            }
            panic!("the network did not settle");
        }

        fn board_edit(&mut self, who: usize, f: impl FnOnce(&mut automerge::transaction::Transaction<'_>, &Board)) {
            let client = &mut self.clients[who];
            let board = Board::read(&client.board).expect("board");
            client.board.set_actor(ActorId::random());
            let mut tx = client.board.transaction();
            f(&mut tx, &board);
            tx.commit();
            self.settle();
        }

        fn desk_edit(&mut self, who: usize, f: impl FnOnce(&mut automerge::transaction::Transaction<'_>)) {
            let mut tx = self.clients[who].desk.transaction();
            f(&mut tx);
            tx.commit();
            self.settle();
        }

        fn write(&mut self, who: usize, id: &str, column: &str, text: &str) {
            let draft = Draft { id: id.into(), column: column.into(), text: text.into(), created_at: 5 };
            self.desk_edit(who, |tx| edit::add_draft(tx, &draft).expect("draft"));
        }

        fn board_of(&self, who: usize) -> Board {
            Board::read(&self.clients[who].board).expect("board")
        }

        fn refusals(&self, who: usize) -> usize {
            self.clients[who].notices.iter().filter(|n| matches!(n, Notice::Refused { .. })).count()
        }
    }

    #[test]
    fn private_writing_reveal_and_publication() {
        let mut net = Net::new();
        let fac = net.join("Fay", true);
        let ann = net.join("Ann", false);
        assert_eq!(net.board_of(ann).facilitator.as_deref(), Some("p-Fay"));
        net.write(ann, "d1", "mad", "Slow reviews");
        net.write(fac, "d2", "glad", "Nice demo");
        assert!(net.board_of(fac).notes.is_empty(), "drafts stay on desks while writing");

        net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Reveal).expect("phase"));
        net.board_edit(fac, |tx, _| edit::reveal(tx, "mad").expect("reveal"));
        let board = net.board_of(fac);
        assert_eq!(board.notes.len(), 1, "only the revealed column is published");
        let note = board.notes.values().next().expect("a note");
        assert_eq!((note.text.as_str(), note.author.as_ref()), ("Slow reviews", None));
        assert_eq!(note.id, published_note_id(&net.clients[ann].desk_id, "d1"));

        net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Group).expect("phase"));
        assert_eq!(net.board_of(ann).notes.len(), 2, "everything is public from Group on");
        net.desk_edit(ann, |tx| edit::set_draft_text(tx, "d1", "Slow code reviews").expect("edit"));
        assert!(net.board_of(fac).notes.values().any(|n| n.text == "Slow code reviews"), "edits follow");
        net.desk_edit(ann, |tx| edit::delete_draft(tx, "d1").expect("delete"));
        assert_eq!(net.board_of(fac).notes.len(), 1, "deletions follow");

        // Every note operation in the board's history is the server's: its actor now, or the one
        // that created the board.
        let history = net.core.board_doc().get_changes(&[]);
        let server = [net.core.board_doc().get_actor().clone(), history[0].actor_id().clone()];
        for change in &history {
            let touches_notes = change.decode().operations.iter().any(|op| match &op.key {
                automerge::legacy::Key::Map(k) => k.as_str() == "notes" || k.as_str() == "text",
                _ => false,
            });
            if touches_notes {
                assert!(server.contains(change.actor_id()), "a note was written by someone other than the server");
            }
        }
    }

    #[test]
    fn notes_written_offline_are_revealed_when_their_author_returns() {
        let mut net = Net::new();
        let fac = net.join("Fay", true);
        let ann = net.join("Ann", false);
        net.clients[ann].offline = true;
        net.write(ann, "d1", "mad", "Written on the train");
        net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Reveal).expect("phase"));
        net.board_edit(fac, |tx, _| edit::reveal_all(tx).expect("reveal"));
        assert!(net.board_of(fac).notes.is_empty(), "nothing reached the server yet");

        // Back online: a fresh connection, as after a reconnect.
        let client = &mut net.clients[ann];
        client.offline = false;
        client.board_sync = sync::State::new();
        client.desk_sync = sync::State::new();
        net.core.leave(client.conn);
        net.settle();
        let texts: Vec<String> = net.board_of(fac).notes.values().map(|n| n.text.clone()).collect();
        assert_eq!(texts, ["Written on the train"]);
    }

    #[test]
    fn several_changes_in_one_message_are_taken() {
        let mut net = Net::new();
        let _fac = net.join("Fay", true);
        let ann = net.join("Ann", false);
        for i in 0..30 {
            net.write(ann, &format!("synced{i}"), "mad", &format!("Note {i}"));
        }
        // A few edits made before the server answers travel as one V2 message, their changes
        // back to back in one chunk (fewer than a third of the document, so not as a whole
        // document); many travel as the whole document.
        for burst in [3, 80] {
            net.clients[ann].offline = true;
            for i in 0..burst {
                net.write(ann, &format!("b{burst}-{i}"), "sad", &format!("Burst {burst}, note {i}"));
            }
            net.clients[ann].offline = false;
            net.settle();
        }
        assert_eq!(net.refusals(ann), 0);
        let desk = Desk::read(net.core.desk_doc(net.clients[ann].desk_id).expect("desk")).expect("desk");
        assert_eq!(desk.drafts.len(), 30 + 3 + 80);
    }

    #[test]
    fn forbidden_changes_are_refused_and_never_relayed() {
        let mut net = Net::new();
        let fac = net.join("Fay", true);
        let ann = net.join("Ann", false);
        let bob = net.join("Bob", false);
        net.board_edit(ann, |tx, _| edit::set_phase(tx, Phase::Vote).expect("phase"));
        assert_eq!(net.refusals(ann), 1);
        assert_eq!(net.board_of(bob).phase, Phase::Write, "others never see it");
        assert_eq!(net.board_of(ann).phase, Phase::Write, "the sender recovers the server's state");
        assert_eq!(net.core.board().phase, Phase::Write);

        net.board_edit(ann, |tx, _| {
            let note = Note {
                id: "forged".into(),
                column: "mad".into(),
                text: "I name you".into(),
                created_at: 0,
                cluster: None,
                author: Some("Bob".into()),
            };
            edit::publish_note(tx, &note).expect("write")
        });
        assert_eq!(net.refusals(ann), 2);
        assert!(net.board_of(bob).notes.is_empty());

        net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Vote).expect("phase"));
        assert_eq!(net.board_of(bob).phase, Phase::Vote, "the facilitator may");
        net.write(ann, "late", "mad", "Too late");
        assert_eq!(net.refusals(ann), 3, "no new notes once voting started");
        assert!(
            net.core.desk_doc(net.clients[ann].desk_id).is_some_and(|d| Desk::read(d).expect("desk").drafts.is_empty())
        );
    }

    #[test]
    fn votes_stay_private_until_closed_and_totals_are_right() {
        let mut net = Net::new();
        let fac = net.join("Fay", true);
        let ann = net.join("Ann", false);
        net.write(ann, "a", "mad", "A");
        net.write(ann, "b", "sad", "B");
        net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Group).expect("phase"));
        net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Vote).expect("phase"));
        let ids: Vec<String> = net.board_of(ann).notes.keys().cloned().collect();
        net.desk_edit(ann, |tx| edit::set_votes(tx, &ids[0], 3).expect("vote"));
        net.desk_edit(fac, |tx| edit::set_votes(tx, &ids[0], 2).expect("vote"));
        net.desk_edit(fac, |tx| edit::set_votes(tx, &ids[1], 3).expect("vote"));
        assert_eq!(net.refusals(fac), 0);
        net.desk_edit(fac, |tx| edit::set_votes(tx, &ids[1], 4).expect("vote"));
        assert_eq!(net.refusals(fac), 1, "per-item maximum");
        assert!(net.board_of(ann).vote_totals.is_empty(), "votes are private while voting");
        let roster = net.clients[ann].notices.iter().rev().find_map(|n| match n {
            Notice::Presence { participants, .. } => Some(participants.clone()),
            _ => None,
        });
        assert!(roster.expect("a roster").iter().all(|p| p.voted), "everyone voted, and that shows");

        net.board_edit(fac, |tx, _| edit::set_phase(tx, Phase::Discuss).expect("phase"));
        let totals = net.board_of(ann).vote_totals;
        assert_eq!(totals.get(&ids[0]), Some(&5));
        assert_eq!(totals.get(&ids[1]), Some(&3));
    }

    // ---- Fuzzing the change validator --------------------------------------------------------

    /// A key for a random path: the schema's own names, ids that exist, and nonsense.
    const KEYS: &[&str] = &[
        "title",
        "phase",
        "columns",
        "notes",
        "clusters",
        "action_items",
        "settings",
        "revealed",
        "facilitator",
        "vote_totals",
        "focus",
        "timer",
        "drafts",
        "votes",
        "ready",
        "abstain",
        "id",
        "column",
        "text",
        "cluster",
        "author",
        "created_at",
        "anonymous",
        "vote_budget",
        "mad",
        "d1",
        "x",
        "0",
    ];

    /// A value a fuzzed change writes.
    #[derive(Debug, Clone)]
    enum Value {
        Str(String),
        Int(i64),
        F64(f64),
        Bool(bool),
        Null,
        Counter(i64),
        Map,
        List,
    }

    /// One gesture of a fuzzed session: raw writes at random paths by anyone, and the valid
    /// gestures that move a retro along, so the raw writes meet every phase.
    #[derive(Debug, Clone)]
    enum Op {
        Board { who: usize, path: Vec<usize>, value: Option<Value> },
        Desk { who: usize, path: Vec<usize>, value: Option<Value> },
        Phase(usize),
        Write { who: usize, draft: usize, text: String },
        Vote { who: usize, note: usize, dots: i64 },
    }

    fn value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        prop_oneof![
            prop_oneof![
                Just(String::new()),
                "[a-z ]{1,12}",
                Just("x".repeat(3_000)),
                Just("write".into()),
                Just("vote".into())
            ]
            .prop_map(Value::Str),
            (-5i64..100).prop_map(Value::Int),
            any::<f64>().prop_map(Value::F64),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
            (-5i64..100).prop_map(Value::Counter),
            Just(Value::Map),
            Just(Value::List),
        ]
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let path = proptest::collection::vec(0..KEYS.len(), 1..4);
        prop_oneof![
            4 => (0..3usize, path.clone(), proptest::option::weighted(0.8, value()))
                .prop_map(|(who, path, value)| Op::Board { who, path, value }),
            3 => (0..3usize, path, proptest::option::weighted(0.8, value()))
                .prop_map(|(who, path, value)| Op::Desk { who, path, value }),
            1 => (0..Phase::ALL.len()).prop_map(Op::Phase),
            2 => (0..3usize, 0..4usize, "[a-z]{1,8}").prop_map(|(who, draft, text)| Op::Write { who, draft, text }),
            1 => (0..3usize, 0..8usize, -2i64..8).prop_map(|(who, note, dots)| Op::Vote { who, note, dots }),
        ]
    }

    /// Applies a raw write at the end of `path`, walking down through the objects that exist.
    fn raw_write(tx: &mut automerge::transaction::Transaction<'_>, path: &[usize], value: &Option<Value>) {
        use automerge::transaction::Transactable;
        use automerge::{ObjType, ReadDoc, ScalarValue};
        let mut obj = automerge::ROOT;
        let mut keys = path.iter().map(|k| KEYS[*k]).peekable();
        while let Some(key) = keys.next() {
            let is_list = tx.object_type(&obj).is_ok_and(|t| t == ObjType::List);
            let last = keys.peek().is_none();
            if !last {
                let child = if is_list { tx.get(&obj, 0usize) } else { tx.get(&obj, key) };
                if let Ok(Some((automerge::Value::Object(_), id))) = child {
                    obj = id;
                    continue;
                }
            }
            let scalar = |v: &Value| -> Option<ScalarValue> {
                Some(match v {
                    Value::Str(s) => ScalarValue::Str(s.as_str().into()),
                    Value::Int(i) => ScalarValue::Int(*i),
                    Value::F64(f) => ScalarValue::F64(*f),
                    Value::Bool(b) => ScalarValue::Boolean(*b),
                    Value::Null => ScalarValue::Null,
                    Value::Counter(c) => ScalarValue::counter(*c),
                    Value::Map | Value::List => return None,
                })
            };
            let objtype = |v: &Value| if matches!(v, Value::List) { ObjType::List } else { ObjType::Map };
            // Errors (a key in a list, an index out of range) are fine: the write just fails.
            let _ = match (is_list, value) {
                (false, None) => tx.delete(&obj, key),
                (true, None) => tx.delete(&obj, 0usize),
                (false, Some(v)) => match scalar(v) {
                    Some(s) => tx.put(&obj, key, s),
                    None => tx.put_object(&obj, key, objtype(v)).map(|_| ()),
                },
                (true, Some(v)) => match scalar(v) {
                    Some(s) => tx.insert(&obj, 0, s),
                    None => tx.insert_object(&obj, 0, objtype(v)).map(|_| ()),
                },
            };
            return;
        }
    }

    /// Runs one fuzzed session and checks what must hold whatever the peers sent.
    fn fuzz_session(ops: &[Op]) {
        let mut net = Net::new();
        let fac = net.join("Fay", true);
        let people = [fac, net.join("Ann", false), net.join("Bob", false)];
        let mut phase = net.core.board().phase;
        for op in ops {
            match op {
                Op::Board { who, path, value } => net.board_edit(people[*who], |tx, _| raw_write(tx, path, value)),
                Op::Desk { who, path, value } => net.desk_edit(people[*who], |tx| raw_write(tx, path, value)),
                Op::Phase(to) => {
                    let to = Phase::ALL[*to];
                    net.board_edit(fac, |tx, _| edit::set_phase(tx, to).expect("phase"));
                }
                Op::Write { who, draft, text } => {
                    let draft =
                        Draft { id: format!("d{draft}"), column: "mad".into(), text: text.clone(), created_at: 1 };
                    net.desk_edit(people[*who], |tx| {
                        let _ = edit::add_draft(tx, &draft);
                    });
                }
                Op::Vote { who, note, dots } => {
                    let board = net.core.board().clone();
                    if let Some(item) = board.vote_items().get(*note) {
                        let id = item.id().to_owned();
                        net.desk_edit(people[*who], |tx| {
                            let _ = edit::set_votes(tx, &id, *dots);
                        });
                    }
                }
            }
            // Whatever was sent, the server's documents still read as a board and desks.
            let board = Board::read(net.core.board_doc()).expect("the server's board always reads");
            let moved_by_facilitator = matches!(op, Op::Phase(_) | Op::Board { who: 0, .. });
            assert!(board.phase == phase || moved_by_facilitator, "only the facilitator moves the phase: {op:?}");
            phase = board.phase;
            let mut drafts = HashMap::new();
            for client in &net.clients {
                let desk = Desk::read(net.core.desk_doc(client.desk_id).expect("desk")).expect("a desk always reads");
                assert!(desk.drafts.len() <= MAX_DRAFTS_PER_DESK);
                for draft in desk.drafts.values() {
                    drafts.insert(published_note_id(&client.desk_id, &draft.id), draft.text.clone());
                }
            }
            // Every note on the board is a draft of somebody's desk, with its text: nobody writes
            // notes but the server, and nobody forges one.
            for note in board.notes.values() {
                assert_eq!(drafts.get(&note.id), Some(&note.text), "note {} is a published draft", note.id);
            }
            // And every client converged on the server's documents, refusals undone.
            for client in &net.clients {
                assert_eq!(client.board.get_heads(), net.core.board_doc().get_heads(), "{op:?}");
            }
        }
    }

    /// Random sessions of valid and invalid changes from every role. `HINDSIGHT_FUZZ_CASES` sets
    /// how many (`just fuzz` runs many more); the figures are printed.
    #[test]
    fn fuzzed_changes_never_break_the_rules_or_the_server() {
        use proptest::test_runner::{Config, TestRunner};
        let cases = std::env::var("HINDSIGHT_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48);
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        let executed = std::cell::Cell::new(0usize);
        let sessions = proptest::collection::vec(op(), 1..40);
        let result = runner.run(&sessions, |ops| {
            executed.set(executed.get() + ops.len());
            fuzz_session(&ops);
            Ok(())
        });
        if let Err(e) = result {
            panic!("after {} changes: {e}", executed.get());
        }
        eprintln!("change validator fuzz: {cases} sessions passed, {} changes checked", executed.get());
    }
}
