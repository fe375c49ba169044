//! One document held by the server and the sync state of each peer syncing it: the guarded
//! receive of a peer's changes, the server's own writes, and the sync messages peers are owed.
//!
//! Incoming changes are never handed to Automerge's `receive_sync_message`. A sync message is
//! first *measured* ([`hindsight_shared::chunks`]): a message that would cost more than its
//! bounds (operations, changes, inflated bytes) is refused before Automerge decodes a byte of it,
//! and so is any change from a peer that may not write. Then its changes are decoded and taken one
//! at a time, in order: each is placed and checked by the document's [`Guard`] before it is
//! applied, applied, and settled. The first refusal ends the message: what follows it is not
//! taken (an honest client sends it again after it dropped the refused change), and at most one
//! rollback is paid per message, only when a change fails a check of the merged state. The rest
//! of the message (heads, needs, bloom filters) then goes through Automerge's own bookkeeping.
//!
//! Invariant: this module knows Automerge and the wire protocol, and nothing of the
//! board's schema, storage, sockets or time (callers pass `now` in).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc as _};
use hindsight_shared::chunks::{self, ChunkError, ChunkKind};
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::rules::Refusal;
use hindsight_shared::schema::SchemaError;

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;

/// What one sync message may cost, and how long changes may wait for their dependencies.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The most operations one change may hold.
    pub max_ops_per_change: u64,
    /// The most operations a message may carry beyond those the document already has (a
    /// document chunk carries the whole document again).
    pub max_new_ops: u64,
    /// The most changes a message may carry beyond those the document already has.
    pub max_new_changes: u64,
    /// The most bytes a message may inflate to.
    pub max_inflated_bytes: u64,
    /// The most changes one peer may have waiting for their dependencies, by count and bytes.
    pub max_waiting: usize,
    pub max_waiting_bytes: usize,
    /// How long a change may wait for its dependencies.
    pub max_wait: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_ops_per_change: 10_000,
            max_new_ops: 50_000,
            max_new_changes: 10_000,
            max_inflated_bytes: 16 * 1024 * 1024,
            max_waiting: 256,
            max_waiting_bytes: 1024 * 1024,
            max_wait: Duration::from_secs(30),
        }
    }
}

/// The rules a document's changes must keep, asked change by change.
pub trait Guard {
    /// What a change touches, found before it is applied and read back after.
    type Touched;
    /// May this peer write to the document at all? Asked before anything is decoded.
    fn may_write(&self) -> Result<(), Refusal>;
    /// Checks `change` before it is applied to `doc` (which does not contain it yet).
    fn before(&mut self, doc: &Automerge, change: &Change) -> Result<Self::Touched, Refusal>;
    /// Reads back what the change touched, now that `doc` contains it, and checks the merged
    /// state. A refusal here makes the replica roll the change back.
    fn after(&mut self, doc: &Automerge, touched: Self::Touched) -> Result<(), Refusal>;
}

/// Why a peer's sync message could not be taken at all (as opposed to a change being refused).
/// The connection ends with the message.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the sync message is malformed: {0}")]
    Malformed(#[from] sync::ReadMessageError),
    #[error("the changes are malformed: {0}")]
    BadChanges(#[from] automerge::AutomergeError),
    #[error("{0}")]
    BadChunk(#[from] ChunkError),
    /// The message costs more than its bounds; nothing of it was decoded.
    #[error("the message is too costly: {0}")]
    TooCostly(String),
}

/// What came of a sync message.
#[derive(Debug, Default)]
pub struct Received {
    /// How many new changes were accepted, their operations and their bytes.
    pub accepted: usize,
    pub ops: u64,
    pub bytes: usize,
    /// The changes refused, and why the first was.
    pub refused: Option<(Refusal, Vec<ChangeHash>)>,
}

impl Received {
    fn refuse(&mut self, refusal: Refusal, hashes: impl IntoIterator<Item = ChangeHash>) {
        match &mut self.refused {
            Some((_, listed)) => listed.extend(hashes),
            None => self.refused = Some((refusal, hashes.into_iter().collect())),
        }
    }
}

/// A change that arrived before a change it builds on.
struct Waiting {
    change: Change,
    since: Instant,
}

struct PeerSync {
    peer: PeerId,
    state: sync::State,
    /// The peer sent something since the last flush, so it may be owed an answer.
    owed: bool,
    /// Changes the peer sent before changes they build on, kept until those arrive. Automerge's
    /// sync does this legitimately: when our bloom filter falsely claims a change, the sender
    /// skips it and sends its descendants, and expects us to ask for it (`need`).
    waiting: Vec<Waiting>,
    /// Changes of this peer's that were refused: a change built on one, arriving in a later
    /// message, is refused at once rather than waiting for a dependency that will never come.
    refused: HashSet<ChangeHash>,
}

impl PeerSync {
    fn new(peer: PeerId) -> Self {
        Self { peer, state: sync::State::new(), owed: false, waiting: Vec::new(), refused: HashSet::new() }
    }
}

/// A document and its peers.
pub struct Replica {
    id: DocumentId,
    doc: Automerge,
    /// The server's actor for its own writes to this document.
    actor: ActorId,
    peers: HashMap<ConnId, PeerSync>,
    /// Changes accepted or written since the last [`saved`](Self::saved), in order. Kept as
    /// they came rather than asked of Automerge, which would walk the whole history to find them.
    unsaved: Vec<Change>,
    /// Heads of the document as far as it is on disk.
    saved_heads: Vec<ChangeHash>,
    /// Heads of the document when peers were last sent sync messages.
    flushed_heads: Vec<ChangeHash>,
    /// The document's size in storage: the snapshot it was loaded from and every change since.
    bytes: usize,
    /// How many changes and operations the document holds.
    changes: u64,
    ops: u64,
    /// The size beyond which peers' changes are refused.
    max_bytes: usize,
    limits: Limits,
}

/// Why a stored document could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("the stored document is corrupt: {0}")]
    Corrupt(#[from] automerge::AutomergeError),
    #[error("the stored document is corrupt: {0}")]
    Chunks(#[from] ChunkError),
}

impl Replica {
    /// Rebuilds a document from a stored snapshot and the changes stored after it. CPU-bound:
    /// call it off the async runtime. Peers' changes that would make it larger than `max_bytes`
    /// in storage are refused.
    pub fn load(
        id: DocumentId,
        actor: ActorId,
        snapshot: &[u8],
        changes: &[Vec<u8>],
        max_bytes: usize,
        limits: Limits,
    ) -> Result<Self, LoadError> {
        let mut doc = if snapshot.is_empty() { Automerge::new() } else { Automerge::load(snapshot)? };
        // One call for every change: Automerge applies them as one batch, far faster than one
        // call (and one pass over the document) per change.
        doc.load_incremental(&changes.concat())?;
        let stored = std::iter::once(snapshot).chain(changes.iter().map(Vec::as_slice));
        let (_, cost) = chunks::measure_all(stored, u64::MAX)?;
        let bytes = snapshot.len() + changes.iter().map(Vec::len).sum::<usize>();
        let mut replica = Self::new(id, actor, doc, bytes, max_bytes, limits);
        (replica.changes, replica.ops) = (cost.changes, cost.ops);
        Ok(replica)
    }

    /// Wraps a small document whose current state is already stored, in `bytes` bytes.
    pub fn new(
        id: DocumentId,
        actor: ActorId,
        mut doc: Automerge,
        bytes: usize,
        max_bytes: usize,
        limits: Limits,
    ) -> Self {
        doc.set_actor(actor.clone());
        let heads = doc.get_heads();
        let changes = doc.get_changes(&[]);
        let ops = changes.iter().map(|c| c.len() as u64).sum();
        Self {
            id,
            actor,
            peers: HashMap::new(),
            unsaved: Vec::new(),
            saved_heads: heads.clone(),
            flushed_heads: heads,
            bytes,
            changes: changes.len() as u64,
            ops,
            max_bytes,
            limits,
            doc,
        }
    }

    pub fn id(&self) -> DocumentId {
        self.id
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// The document's size in storage, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The connections syncing this document, with their peer ids.
    pub fn peers(&self) -> impl Iterator<Item = (ConnId, &PeerId)> {
        self.peers.iter().map(|(conn, p)| (*conn, &p.peer))
    }

    /// Takes a sync message from a peer, checking every change it carries with `guard`.
    ///
    /// `ops_allowed` is how many new operations the peer may still send (its allowance); the
    /// operations the message carried are taken from it.
    pub fn receive(
        &mut self,
        conn: ConnId,
        from: &PeerId,
        data: &[u8],
        now: Instant,
        ops_allowed: &mut u64,
        guard: &mut impl Guard,
    ) -> Result<Received, ReceiveError> {
        let message = sync::Message::decode(data)?;
        let peer = self.peers.entry(conn).or_insert_with(|| PeerSync::new(from.clone()));
        peer.owed = true;
        let mut received = Received::default();

        // Decide before working: what the message would cost, and whether this peer may write.
        let (measured, cost) = chunks::measure_all(message.changes.iter(), self.limits.max_inflated_bytes)?;
        // A document chunk carries the whole document again, ours included.
        let carries_document = measured.iter().any(|(chunk, _)| chunk.kind == ChunkKind::Document);
        let (new_ops, new_changes) = if carries_document {
            (cost.ops.saturating_sub(self.ops), cost.changes.saturating_sub(self.changes))
        } else {
            (cost.ops, cost.changes)
        };
        if let Some((_, chunk)) = measured.iter().find(|(c, cost)| {
            matches!(c.kind, ChunkKind::Change | ChunkKind::CompressedChange)
                && cost.ops > self.limits.max_ops_per_change
        }) {
            return Err(ReceiveError::TooCostly(format!(
                "a change holds {} operations; at most {} are taken",
                chunk.ops, self.limits.max_ops_per_change
            )));
        }
        if new_ops > self.limits.max_new_ops || new_changes > self.limits.max_new_changes {
            return Err(ReceiveError::TooCostly(format!(
                "it carries {new_ops} new operations in {new_changes} changes; at most {} operations in {} changes are taken",
                self.limits.max_new_ops, self.limits.max_new_changes
            )));
        }
        if new_ops > *ops_allowed {
            return Err(ReceiveError::TooCostly(format!(
                "too many operations: {new_ops} more than this connection may send now ({})",
                *ops_allowed
            )));
        }
        *ops_allowed -= new_ops;

        if !measured.is_empty()
            && let Err(refusal) = guard.may_write()
        {
            // Named without being applied: a change chunk by its hash, a bundle or a compressed
            // change by decoding it (bounded above). A document cannot be named without loading
            // it, and only a peer that may write has any reason to send one.
            let mut hashes = Vec::new();
            for (chunk, _) in &measured {
                match chunk.kind {
                    ChunkKind::Change => {
                        // Measuring checked its checksum.
                        hashes.extend(chunk.change_hash().map(ChangeHash));
                    }
                    ChunkKind::Document => {
                        return Err(ReceiveError::TooCostly(format!("{refusal}: this peer may not send documents")));
                    }
                    ChunkKind::CompressedChange | ChunkKind::Bundle => {
                        hashes.extend(chunk.changes()?.iter().map(Change::hash));
                    }
                }
            }
            received.refuse(refusal, hashes);
            if let Some(peer) = self.peers.get_mut(&conn) {
                peer.state = sync::State::new();
            }
            return Ok(received);
        }

        let mut incoming = self.decode(&measured)?;
        let peer = self.peers.get_mut(&conn).expect("the peer was added above");
        let mut refused = std::mem::take(&mut peer.refused);
        let waiting = std::mem::take(&mut peer.waiting);
        // Changes that waited too long for their dependencies are given up.
        let (stale, mut waiting): (Vec<Waiting>, Vec<Waiting>) =
            waiting.into_iter().partition(|w| now.saturating_duration_since(w.since) > self.limits.max_wait);
        if !stale.is_empty() {
            let hashes: Vec<ChangeHash> = stale.iter().map(|w| w.change.hash()).collect();
            refused.extend(hashes.iter().copied());
            received.refuse(Refusal("the changes it builds on never arrived".into()), hashes);
        }
        incoming.retain(|change| !waiting.iter().any(|w| w.change.hash() == change.hash()));
        waiting.extend(incoming.into_iter().map(|change| Waiting { change, since: now }));
        let mut pending = waiting;

        // Passes over the changes still to place, in the order they came: a change whose
        // dependencies have not arrived waits for a later pass, or a later message.
        let mut stop = received.refused.is_some();
        while !stop {
            let mut progress = false;
            let mut later = Vec::new();
            let mut rest = pending.into_iter();
            for waiting in rest.by_ref() {
                let change = &waiting.change;
                let verdict = if change.deps().iter().any(|dep| refused.contains(dep)) {
                    Err(Refusal("the change depends on a refused change".into()))
                } else if !change.deps().iter().all(|dep| self.has_change(dep)) {
                    later.push(waiting);
                    continue;
                } else {
                    self.take(change, guard)?
                };
                progress = true;
                match verdict {
                    Ok(()) => {
                        received.accepted += 1;
                        received.ops += change.len() as u64;
                        received.bytes += change.raw_bytes().len();
                    }
                    Err(refusal) => {
                        refused.insert(change.hash());
                        received.refuse(refusal, [change.hash()]);
                        // The first refusal ends the message; the rest is not taken.
                        stop = true;
                        break;
                    }
                }
            }
            if stop {
                // The rest of the message is not taken; what in it builds on a refused change
                // (a draft written on top of a forbidden edit, sent together) is refused with
                // it at once, as it would be in a later message: it could never be taken.
                let untaken: Vec<Waiting> = later.drain(..).chain(rest).collect();
                let mut dependent = Vec::new();
                loop {
                    let found = dependent.len();
                    for waiting in &untaken {
                        let hash = waiting.change.hash();
                        if !refused.contains(&hash) && waiting.change.deps().iter().any(|dep| refused.contains(dep)) {
                            refused.insert(hash);
                            dependent.push(hash);
                        }
                    }
                    if dependent.len() == found {
                        break;
                    }
                }
                received.refuse(Refusal("the change depends on a refused change".into()), dependent);
            }
            pending = later;
            if !progress || pending.is_empty() {
                break;
            }
        }
        let pending_bytes: usize = pending.iter().map(|w| w.change.raw_bytes().len()).sum();
        if pending.len() > self.limits.max_waiting || pending_bytes > self.limits.max_waiting_bytes {
            let hashes: Vec<ChangeHash> = pending.drain(..).map(|w| w.change.hash()).collect();
            refused.extend(hashes.iter().copied());
            received.refuse(Refusal("too many changes whose dependencies the server does not have".into()), hashes);
        }

        let peer = self.peers.get_mut(&conn).expect("the peer was added above");
        peer.refused = refused;
        if received.refused.is_some() {
            // The peer's heads name changes we refused; syncing on from this state would ask it
            // for them again. Start afresh: the peer drops them when it reads the refusal.
            peer.state = sync::State::new();
            peer.waiting.clear();
            return Ok(received);
        }
        peer.waiting = pending;
        let had_changes = !message.changes.is_empty();
        let last_sent = peer.state.last_sent_heads.clone();
        let bookkeeping = sync::Message { changes: sync::ChunkList::empty(), ..message };
        self.doc.receive_sync_message(&mut peer.state, bookkeeping)?;
        if had_changes {
            // Automerge would take a message without changes whose heads equal ours as "they
            // know our heads"; it carried changes, so they still need our acknowledgement.
            peer.state.last_sent_heads = last_sent;
        }
        if !peer.waiting.is_empty() {
            // Automerge asks a peer (`need`) for what its own queue of early changes lacks; the
            // waiting changes are our queue, so name what they lack among the peer's heads.
            let waiting: HashSet<ChangeHash> = peer.waiting.iter().map(|w| w.change.hash()).collect();
            let mut heads: Vec<ChangeHash> = peer
                .state
                .their_heads
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|h| !waiting.contains(h))
                .collect();
            for dep in peer.waiting.iter().flat_map(|w| w.change.deps()) {
                if !waiting.contains(dep) && self.doc.get_change_meta_by_hash(dep).is_none() && !heads.contains(dep) {
                    heads.push(*dep);
                }
            }
            peer.state.their_heads = Some(heads);
        }
        Ok(received)
    }

    /// Checks, applies and settles one change whose dependencies the document has. A change
    /// refused after it was applied is rolled back.
    fn take(&mut self, change: &Change, guard: &mut impl Guard) -> Result<Result<(), Refusal>, ReceiveError> {
        if change.len() as u64 > self.limits.max_ops_per_change {
            return Ok(Err(Refusal(format!(
                "a change may hold at most {} operations",
                self.limits.max_ops_per_change
            ))));
        }
        if self.bytes + change.raw_bytes().len() > self.max_bytes {
            return Ok(Err(Refusal(format!(
                "the document is full: it may take at most {} KiB",
                self.max_bytes / 1024
            ))));
        }
        let touched = match guard.before(&self.doc, change) {
            Ok(touched) => touched,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let before = self.doc.get_heads();
        self.doc.apply_changes([change.clone()])?;
        if let Err(refusal) = guard.after(&self.doc, touched) {
            self.rollback(&before)?;
            return Ok(Err(refusal));
        }
        self.bytes += change.raw_bytes().len();
        self.changes += 1;
        self.ops += change.len() as u64;
        self.unsaved.push(change.clone());
        Ok(Ok(()))
    }

    fn has_change(&self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }

    /// The changes measured chunks carry that the document does not have yet, in order.
    fn decode(&self, measured: &[(chunks::Chunk<'_>, chunks::Cost)]) -> Result<Vec<Change>, ReceiveError> {
        let mut changes = Vec::new();
        for (chunk, _) in measured {
            changes.extend(chunk.changes()?);
        }
        let mut seen = HashSet::new();
        changes.retain(|change| seen.insert(change.hash()) && !self.has_change(&change.hash()));
        Ok(changes)
    }

    /// Rebuilds the document as it was at `heads`: Automerge cannot unapply a change. Costs a
    /// replay of the history, paid at most once per message, and only for a change that passed
    /// every check made before it was applied.
    fn rollback(&mut self, heads: &[ChangeHash]) -> Result<(), automerge::AutomergeError> {
        let mut doc = self.doc.fork_at(heads)?;
        doc.set_actor(self.actor.clone());
        self.doc = doc;
        Ok(())
    }

    /// Makes a change as the server. Nothing is written if `edit` fails or changes nothing.
    /// Returns the bytes the change adds to the document.
    pub fn write(
        &mut self,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>,
    ) -> Result<usize, SchemaError> {
        let mut tx = self.doc.transaction();
        match edit(&mut tx) {
            Ok(()) => {
                let (hash, _) = tx.commit_with(CommitOptions::default().with_time(0));
                let Some(change) = hash.and_then(|hash| self.doc.get_change_by_hash(&hash)) else { return Ok(0) };
                let added = change.raw_bytes().len();
                self.ops += change.len() as u64;
                self.changes += 1;
                self.bytes += added;
                self.unsaved.push(change);
                Ok(added)
            }
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        }
    }

    /// Takes a peer whose session was with another replica of this document (cluster
    /// failover): a fresh sync state whose first message asks the peer to reset its own (it then
    /// forgets which changes it believed sent, and sends whatever this replica lacks). The
    /// message goes out with the next flush.
    pub fn resume(&mut self, conn: ConnId, from: &PeerId) {
        let peer = self.peers.entry(conn).or_insert_with(|| PeerSync::new(from.clone()));
        peer.state = sync::State::new();
        peer.state.needs_reset = true;
        peer.owed = true;
    }

    /// Forgets a peer whose connection closed.
    pub fn leave(&mut self, conn: ConnId) {
        self.peers.remove(&conn);
    }

    /// The changes accepted or written since the last [`saved`](Self::saved), as Automerge
    /// encodes them.
    pub fn unsaved(&self) -> &[Change] {
        &self.unsaved
    }

    /// Records that everything [`unsaved`](Self::unsaved) returned is durable.
    pub fn saved(&mut self) {
        self.unsaved.clear();
        self.saved_heads = self.doc.get_heads();
    }

    /// Generates the sync messages peers are owed: every peer when the document changed, else
    /// only the peers that spoke since the last flush.
    pub fn flush(&mut self, server: &PeerId, out: &mut Vec<(ConnId, WireMessage)>) {
        let heads = self.doc.get_heads();
        if heads != self.saved_heads {
            // The actor saves before it flushes; sending now would acknowledge changes that are
            // not durable.
            tracing::error!("flush with unsaved changes; nothing sent");
            return;
        }
        let changed = heads != self.flushed_heads;
        for (&conn, peer) in &mut self.peers {
            if !(changed || peer.owed) {
                continue;
            }
            peer.owed = false;
            if changed {
                // Our heads acknowledge stored changes: always send them after a change, even
                // when the peer's latest message made Automerge believe it had.
                peer.state.last_sent_heads.clear();
            }
            if let Some(message) = self.doc.generate_sync_message(&mut peer.state) {
                if message.heads.is_empty() {
                    // A reset (see `resume`) states no heads, though Automerge records ours as
                    // sent: the peer has not heard them, so the next message must state them.
                    peer.state.last_sent_heads.clear();
                }
                out.push((
                    conn,
                    WireMessage::Sync {
                        document_id: self.id,
                        sender_id: server.clone(),
                        target_id: peer.peer.clone(),
                        data: message.encode(),
                    },
                ));
            }
        }
        self.flushed_heads = heads;
    }
}

#[cfg(test)]
mod tests {
    use automerge::sync::{self, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{ActorId, Automerge, ROOT, ReadDoc};
    use hindsight_shared::ids::{DocumentId, PeerId};
    use hindsight_shared::rules::Refusal;

    use std::time::Duration;

    use super::*;

    /// Takes everything.
    struct Open;

    impl Guard for Open {
        type Touched = ();
        fn may_write(&self) -> Result<(), Refusal> {
            Ok(())
        }
        fn before(&mut self, _: &Automerge, _: &Change) -> Result<(), Refusal> {
            Ok(())
        }
        fn after(&mut self, _: &Automerge, (): ()) -> Result<(), Refusal> {
            Ok(())
        }
    }

    fn replica() -> Replica {
        Replica::new(DocumentId::random(), ActorId::random(), Automerge::new(), 0, usize::MAX, Limits::default())
    }

    /// A peer may send its changes as one document chunk (Automerge does when it sends most of
    /// a document). Found by the fuzzer: they were read as an empty bundle and lost.
    #[test]
    fn changes_sent_as_a_document_chunk_are_taken() {
        let mut replica = replica();
        let mut client = Automerge::new();
        for n in 0..3i64 {
            let mut tx = client.transaction();
            tx.put(ROOT, "n", n).expect("put");
            tx.commit();
        }
        let generated = client.generate_sync_message(&mut sync::State::new()).expect("a message");
        let message = sync::Message {
            heads: client.get_heads(),
            need: vec![],
            have: vec![],
            changes: sync::ChunkList::from(client.save()),
            ..generated
        };
        let received = replica
            .receive(1, &PeerId::from("client"), &message.encode(), Instant::now(), &mut u64::MAX.clone(), &mut Open)
            .expect("a good message");
        assert_eq!(received.accepted, 3);
        assert_eq!(replica.doc().get_heads(), client.get_heads());
        assert_eq!(replica.doc().get(ROOT, "n").expect("get").map(|(v, _)| v.as_i64()), Some(Some(2)));
    }

    /// Drives a replica and a client until neither has anything to say; the server's messages
    /// pass through `flush` (which acknowledges only what was received since).
    fn settle(server: &mut Replica, client: &mut Automerge, state: &mut sync::State) {
        let peer = PeerId::from("client");
        for _ in 0..10 {
            let mut out = Vec::new();
            server.saved();
            server.flush(&PeerId::from("server"), &mut out);
            for (_, message) in out {
                let WireMessage::Sync { data, .. } = message else { continue };
                client.receive_sync_message(state, sync::Message::decode(&data).expect("decodes")).expect("applies");
            }
            let Some(reply) = client.generate_sync_message(state) else { return };
            server.receive(1, &peer, &reply.encode(), Instant::now(), &mut u64::MAX.clone(), &mut Open).expect("taken");
        }
        panic!("the replica and the client never settled");
    }

    /// A replica and a client synced over one change writing `key`.
    fn synced(key: &str) -> (Replica, Automerge, sync::State) {
        let (mut owner, mut client, mut state) = (replica(), Automerge::new(), sync::State::new());
        let mut tx = client.transaction();
        tx.put(ROOT, key, 1).expect("put");
        tx.commit();
        settle(&mut owner, &mut client, &mut state);
        assert_eq!(owner.doc().get_heads(), client.get_heads());
        (owner, client, state)
    }

    /// The next owner of `old`'s document, loaded from what `old` stored, resuming the client.
    fn next_owner(old: &Replica) -> Replica {
        let saved = old.doc().save();
        let mut next = Replica::load(old.id(), ActorId::random(), &saved, &[], usize::MAX, Limits::default())
            .expect("loads what the old owner stored");
        next.resume(1, &PeerId::from("client"));
        next
    }

    /// Failover: a client's change reached an owner that died before storing it, so the client
    /// believes it sent it. The next owner, resuming the client, makes it send the change again,
    /// takes it, and says so (its heads reach the client).
    #[test]
    fn a_resumed_peer_sends_again_what_the_previous_owner_lost_and_hears_it_taken() {
        let (old, mut client, mut state) = synced("before");
        let mut tx = client.transaction();
        tx.put(ROOT, "lost", 2).expect("put");
        tx.commit();
        let lost = client.generate_sync_message(&mut state).expect("a message with the change");
        assert_eq!(lost.changes.len(), 1, "the change went out (and the owner died with it)");

        let mut next = next_owner(&old);
        settle(&mut next, &mut client, &mut state);
        assert_eq!(next.doc().get_heads(), client.get_heads(), "the lost change was sent again and taken");
        assert_eq!(state.shared_heads, client.get_heads(), "the client heard that the next owner holds it");
    }

    /// A resumed client that lost nothing still hears the next owner's heads: the reset message
    /// states none, so the owner states them once the client answered (an acknowledgement the
    /// client waits for).
    #[test]
    fn a_resumed_peer_that_lost_nothing_hears_the_next_owners_heads() {
        let (old, mut client, mut state) = synced("kept");
        let mut next = next_owner(&old);
        settle(&mut next, &mut client, &mut state);
        assert_eq!(state.shared_heads, client.get_heads(), "the client never heard the next owner's heads");
    }

    fn message_with(changes: Vec<Vec<u8>>) -> Vec<u8> {
        sync::Message {
            heads: vec![],
            need: vec![],
            have: vec![],
            changes: sync::ChunkList::from(changes),
            flags: None,
            version: sync::MessageVersion::V1,
        }
        .encode()
    }

    /// Refuses any change that writes `forbidden`.
    struct Forbid;

    impl Guard for Forbid {
        type Touched = ();
        fn may_write(&self) -> Result<(), Refusal> {
            Ok(())
        }
        fn before(&mut self, _: &Automerge, change: &Change) -> Result<(), Refusal> {
            let mut probe = Automerge::new();
            probe.apply_changes([change.clone()]).ok();
            match probe.get(ROOT, "forbidden") {
                Ok(Some(_)) => Err(Refusal("forbidden".into())),
                _ => Ok(()),
            }
        }
        fn after(&mut self, _: &Automerge, (): ()) -> Result<(), Refusal> {
            Ok(())
        }
    }

    /// A refused change and a change built on it, sent in one message (a client's first sync
    /// can carry both): both are named in the refusal at once, not only the first.
    #[test]
    fn changes_built_on_a_refused_change_in_the_same_message_are_refused_with_it() {
        let mut replica = replica();
        let mut client = Automerge::new();
        let mut changes = Vec::new();
        for key in ["forbidden", "built on it", "and on that"] {
            let mut tx = client.transaction();
            tx.put(ROOT, key, true).expect("put");
            tx.commit();
            changes.push(client.get_last_local_change().expect("a change").clone());
        }
        let message = message_with(changes.iter().map(|c| c.raw_bytes().to_vec()).collect());
        let received = replica
            .receive(1, &PeerId::from("client"), &message, Instant::now(), &mut u64::MAX.clone(), &mut Forbid)
            .expect("a good message");
        let (refusal, hashes) = received.refused.expect("refused");
        assert_eq!(refusal.0, "forbidden");
        assert_eq!(hashes, changes.iter().map(Change::hash).collect::<Vec<_>>());
        assert!(replica.doc().get_heads().is_empty(), "nothing was applied");
    }

    /// A change whose dependency never comes waits, but not for ever, and not beyond its bytes.
    #[test]
    fn changes_wait_for_their_dependencies_for_a_bounded_time_and_size() {
        let limits = Limits { max_waiting_bytes: 64 * 1024, ..Limits::default() };
        let mut replica =
            Replica::new(DocumentId::random(), ActorId::random(), Automerge::new(), 0, usize::MAX, limits.clone());
        let mut client = Automerge::new();
        let mut changes = Vec::new();
        for n in 0..12i64 {
            let mut tx = client.transaction();
            tx.put(ROOT, "n", n).expect("put");
            tx.put(ROOT, "padding", format!("{n}{}", "x".repeat(8 * 1024))).expect("put");
            tx.commit();
            changes.push(client.get_last_local_change().expect("a change").raw_bytes().to_vec());
        }
        let start = Instant::now();
        let peer = PeerId::from("client");
        // The second change, without the first: it waits.
        let received =
            replica.receive(1, &peer, &message_with(vec![changes[1].clone()]), start, &mut u64::MAX.clone(), &mut Open);
        assert!(received.expect("taken").refused.is_none(), "it waits");
        // Past the time a change may wait, the next message gives it up.
        let later = start + limits.max_wait + Duration::from_secs(1);
        let received = replica.receive(1, &peer, &message_with(vec![]), later, &mut u64::MAX.clone(), &mut Open);
        let (refusal, hashes) = received.expect("taken").refused.expect("given up");
        assert!(refusal.0.contains("never arrived"), "{refusal}");
        assert_eq!(hashes.len(), 1);
        // More waiting bytes than the bound: refused at once.
        let message = message_with(changes[2..].to_vec());
        let received = replica.receive(2, &peer, &message, later, &mut u64::MAX.clone(), &mut Open);
        let (refusal, hashes) = received.expect("taken").refused.expect("too many bytes waiting");
        assert!(refusal.0.contains("dependencies"), "{refusal}");
        assert_eq!(hashes.len(), 10);
        assert!(replica.doc().get_heads().is_empty(), "nothing was applied");
    }

    /// A run-length-encoded column of a million operations, in a change of a few hundred bytes:
    /// refused before Automerge decodes it.
    #[test]
    fn a_message_over_its_operation_bound_is_refused_before_it_is_decoded() {
        let mut replica = replica();
        let mut client = Automerge::new();
        let mut tx = client.transaction();
        let map = tx.put_object(ROOT, "m", automerge::ObjType::Map).expect("map");
        for i in 0..20_001 {
            tx.put(&map, "k", i).expect("put");
        }
        tx.commit();
        let change = client.get_last_local_change().expect("a change").raw_bytes().to_vec();
        let message = sync::Message {
            heads: client.get_heads(),
            need: vec![],
            have: vec![],
            changes: sync::ChunkList::from(vec![change]),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        let error = replica
            .receive(1, &PeerId::from("client"), &message.encode(), Instant::now(), &mut u64::MAX.clone(), &mut Open)
            .expect_err("too many operations");
        assert!(matches!(error, ReceiveError::TooCostly(_)), "{error}");
        assert!(replica.doc().get_heads().is_empty());
    }
}
