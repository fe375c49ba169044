//! One document held by the server and the sync state of each peer syncing it: receive with a
//! check of every incoming change, the server's own writes, and the flush of sync messages.
//!
//! Incoming changes are never handed to Automerge's `receive_sync_message` directly. They are
//! taken out of the sync message, applied one at a time, and each is checked in the document it
//! produces; a refused change is rolled back at once, before anything could be stored or relayed.
//! The rest of the sync message (heads, needs, bloom filters) then goes through Automerge's own
//! bookkeeping.

use std::collections::{HashMap, HashSet};

use automerge::sync::{self, SyncDoc};
use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Automerge, Change, ChangeHash, ReadDoc};
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::rules::Refusal;
use hindsight_shared::schema::SchemaError;

use super::core::ConnId;
use crate::store::{StoredChange, StoredDoc};

/// Why a peer's sync message could not be taken at all (as opposed to a change being refused).
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the sync message is malformed: {0}")]
    Malformed(#[from] sync::ReadMessageError),
    #[error("the changes are malformed: {0}")]
    BadChanges(#[from] automerge::AutomergeError),
    #[error("the changes are not well-formed Automerge chunks")]
    BadChunk,
}

/// Why a stored document could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("the stored document is corrupt: {0}")]
pub struct LoadError(#[from] automerge::AutomergeError);

/// What came of a sync message.
#[derive(Debug, Default)]
pub struct Received {
    /// How many new changes were accepted.
    pub accepted: usize,
    /// The changes refused, and why the first was.
    pub refused: Option<(Refusal, Vec<ChangeHash>)>,
}

/// The most changes one peer may have waiting for their dependencies.
const MAX_WAITING: usize = 256;

struct PeerSync {
    peer: PeerId,
    state: sync::State,
    /// The peer sent something since the last flush, so it may be owed an answer.
    owed: bool,
    /// Changes the peer sent before changes they build on, kept until those arrive. Automerge's
    /// sync does this legitimately: when our bloom filter falsely claims a change, the sender
    /// skips it and sends its descendants, and expects us to ask for it (`need`).
    waiting: Vec<Change>,
    /// Changes of this peer's that were refused: a change built on one, arriving in a later
    /// message, is refused at once rather than waiting for a dependency that will never come.
    refused: HashSet<ChangeHash>,
}

/// The chunk types of Automerge's storage format (the byte after magic and checksum).
const CHUNK_DOCUMENT: u8 = 0;
const CHUNK_CHANGE: u8 = 1;
const CHUNK_COMPRESSED_CHANGE: u8 = 2;
const CHUNK_BUNDLE: u8 = 3;

/// Splits bytes holding Automerge chunks back to back into single chunks, by their headers:
/// 4 magic bytes, a 4-byte checksum, a type byte, the length (unsigned LEB128), then the data.
fn split_chunks(mut bytes: &[u8]) -> Result<Vec<&[u8]>, ReceiveError> {
    const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
    let mut chunks = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 9 || bytes[..4] != MAGIC {
            return Err(ReceiveError::BadChunk);
        }
        let (mut length, mut shift, mut at) = (0u64, 0u32, 9usize);
        loop {
            let byte = *bytes.get(at).ok_or(ReceiveError::BadChunk)?;
            at += 1;
            length |= u64::from(byte & 0x7f).checked_shl(shift).ok_or(ReceiveError::BadChunk)?;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err(ReceiveError::BadChunk);
            }
        }
        let end = usize::try_from(length).ok().and_then(|l| at.checked_add(l)).ok_or(ReceiveError::BadChunk)?;
        if end > bytes.len() {
            return Err(ReceiveError::BadChunk);
        }
        chunks.push(&bytes[..end]);
        bytes = &bytes[end..];
    }
    Ok(chunks)
}

/// A document and its peers.
pub struct Replica {
    id: DocumentId,
    doc: Automerge,
    /// The server's actor for its own writes to this document.
    actor: ActorId,
    peers: HashMap<ConnId, PeerSync>,
    /// Heads of the document as far as it is on disk.
    saved_heads: Vec<ChangeHash>,
    /// Heads of the document when peers were last sent sync messages.
    flushed_heads: Vec<ChangeHash>,
    /// The document's size in storage: the snapshot it was loaded from and every change since.
    bytes: usize,
    /// The size beyond which peers' changes are refused.
    max_bytes: usize,
}

impl Replica {
    /// Rebuilds a document from what the store holds. CPU-bound: call it off the async runtime.
    /// Peers' changes that would make it larger than `max_bytes` in storage are refused.
    pub fn load(id: DocumentId, actor: ActorId, stored: &StoredDoc, max_bytes: usize) -> Result<Self, LoadError> {
        let mut doc = if stored.snapshot.is_empty() { Automerge::new() } else { Automerge::load(&stored.snapshot)? };
        // One call for every change: Automerge applies them as one batch, far faster than one
        // call (and one pass over the document) per change.
        doc.load_incremental(&stored.changes.concat())?;
        let bytes = stored.snapshot.len() + stored.changes.iter().map(Vec::len).sum::<usize>();
        Ok(Self::new(id, actor, doc, bytes, max_bytes))
    }

    /// Wraps a document whose current state is already stored, in `bytes` bytes.
    pub fn new(id: DocumentId, actor: ActorId, mut doc: Automerge, bytes: usize, max_bytes: usize) -> Self {
        doc.set_actor(actor.clone());
        let heads = doc.get_heads();
        Self {
            id,
            doc,
            actor,
            peers: HashMap::new(),
            saved_heads: heads.clone(),
            flushed_heads: heads,
            bytes,
            max_bytes,
        }
    }

    pub fn id(&self) -> DocumentId {
        self.id
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    pub fn has_peer(&self, conn: ConnId) -> bool {
        self.peers.contains_key(&conn)
    }

    /// The connections syncing this document, with their peer ids.
    pub fn peers(&self) -> impl Iterator<Item = (ConnId, &PeerId)> {
        self.peers.iter().map(|(conn, p)| (*conn, &p.peer))
    }

    /// Takes a sync message from a peer. Every new change it carries is applied and passed to
    /// `check` in the resulting document; a change `check` refuses is rolled back, as is every
    /// later change of the message that depends on it. A change whose dependencies have not
    /// arrived waits for them (they are asked for), for at most [`MAX_WAITING`] changes.
    pub fn receive(
        &mut self,
        conn: ConnId,
        from: &PeerId,
        data: &[u8],
        mut check: impl FnMut(&Automerge, &Change) -> Result<(), Refusal>,
    ) -> Result<Received, ReceiveError> {
        let message = sync::Message::decode(data)?;
        let peer = self.peers.entry(conn).or_insert_with(|| PeerSync {
            peer: from.clone(),
            state: sync::State::new(),
            owed: false,
            waiting: Vec::new(),
            refused: HashSet::new(),
        });
        peer.owed = true;
        let mut refused = std::mem::take(&mut peer.refused);
        let mut incoming = std::mem::take(&mut peer.waiting);
        incoming.extend(self.new_changes(&message.changes)?);
        let mut seen = HashSet::new();
        incoming.retain(|change| seen.insert(change.hash()) && !self.has_change(&change.hash()));

        let mut received = Received::default();
        // Passes over the changes still to place, in the order they came: a change whose
        // dependencies have not arrived waits for a later pass, or a later message.
        loop {
            let mut progress = false;
            let mut later = Vec::new();
            for change in incoming {
                let hash = change.hash();
                let verdict = if change.deps().iter().any(|dep| refused.contains(dep)) {
                    Err(Refusal("the change depends on a refused change".into()))
                } else if !change.deps().iter().all(|dep| self.has_change(dep)) {
                    later.push(change);
                    continue;
                } else if self.bytes + change.raw_bytes().len() > self.max_bytes {
                    Err(Refusal(format!("the document is full: it may take at most {} KiB", self.max_bytes / 1024)))
                } else {
                    let before = self.doc.get_heads();
                    self.doc.apply_changes([change.clone()])?;
                    let verdict = check(&self.doc, &change);
                    if verdict.is_err() {
                        self.rollback(&before)?;
                    }
                    verdict
                };
                progress = true;
                match verdict {
                    Ok(()) => {
                        received.accepted += 1;
                        self.bytes += change.raw_bytes().len();
                    }
                    Err(refusal) => {
                        refused.insert(hash);
                        match &mut received.refused {
                            Some((_, hashes)) => hashes.push(hash),
                            None => received.refused = Some((refusal, vec![hash])),
                        }
                    }
                }
            }
            incoming = later;
            if !progress || incoming.is_empty() {
                break;
            }
        }
        if incoming.len() > MAX_WAITING {
            let hashes: Vec<ChangeHash> = incoming.drain(..).map(|change| change.hash()).collect();
            refused.extend(hashes.iter().copied());
            match &mut received.refused {
                Some((_, listed)) => listed.extend(hashes),
                None => {
                    let refusal = Refusal("too many changes whose dependencies the server does not have".into());
                    received.refused = Some((refusal, hashes));
                }
            }
        }

        let Some(peer) = self.peers.get_mut(&conn) else { return Ok(received) };
        peer.waiting = incoming;
        peer.refused = refused;
        if received.refused.is_some() {
            // The peer's heads name changes we refused; syncing on from this state would ask it
            // for them again. Start afresh: the peer drops them when it reads the refusal.
            peer.state = sync::State::new();
            return Ok(received);
        }
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
            let waiting: HashSet<ChangeHash> = peer.waiting.iter().map(Change::hash).collect();
            let mut heads: Vec<ChangeHash> = peer
                .state
                .their_heads
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|h| !waiting.contains(h))
                .collect();
            for dep in peer.waiting.iter().flat_map(|change| change.deps()) {
                if !waiting.contains(dep) && self.doc.get_change_meta_by_hash(dep).is_none() && !heads.contains(dep) {
                    heads.push(*dep);
                }
            }
            peer.state.their_heads = Some(heads);
        }
        Ok(received)
    }

    fn has_change(&self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }

    /// The changes carried by a sync message that the document does not have yet, in order.
    fn new_changes(&self, chunks: &sync::ChunkList) -> Result<Vec<Change>, ReceiveError> {
        let mut changes = Vec::new();
        // A V2 sync message carries its changes back to back in one entry; a peer that sends
        // most of a document sends it as one document chunk.
        for entry in chunks.iter() {
            for chunk in split_chunks(entry)? {
                // By the chunk's type byte: `Bundle::try_from` also accepts a document chunk, and
                // reads no changes from it (found by the fuzzer: a client's change vanished).
                match chunk[8] {
                    CHUNK_DOCUMENT => changes.extend(Automerge::load(chunk)?.get_changes(&[])),
                    CHUNK_CHANGE | CHUNK_COMPRESSED_CHANGE => {
                        changes.push(Change::try_from(chunk).map_err(|_| ReceiveError::BadChunk)?);
                    }
                    CHUNK_BUNDLE => {
                        let bundle = automerge::Bundle::try_from(chunk).map_err(|_| ReceiveError::BadChunk)?;
                        changes.extend(bundle.to_changes()?);
                    }
                    _ => return Err(ReceiveError::BadChunk),
                }
            }
        }
        let mut seen = HashSet::new();
        changes.retain(|change| seen.insert(change.hash()) && !self.has_change(&change.hash()));
        Ok(changes)
    }

    /// Rebuilds the document as it was at `heads`: Automerge cannot unapply a change. Costs a
    /// replay of the history, which only a refused change pays.
    fn rollback(&mut self, heads: &[ChangeHash]) -> Result<(), automerge::AutomergeError> {
        let mut doc = self.doc.fork_at(heads)?;
        doc.set_actor(self.actor.clone());
        self.doc = doc;
        Ok(())
    }

    /// Makes a change as the server. Nothing is written if `edit` fails or changes nothing.
    pub fn write(
        &mut self,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>,
    ) -> Result<(), SchemaError> {
        let mut tx = self.doc.transaction();
        match edit(&mut tx) {
            Ok(()) => {
                let (hash, _) = tx.commit_with(CommitOptions::default().with_time(0));
                if let Some(change) = hash.and_then(|hash| self.doc.get_change_by_hash(&hash)) {
                    self.bytes += change.raw_bytes().len();
                }
                Ok(())
            }
            Err(e) => {
                tx.rollback();
                Err(e)
            }
        }
    }

    /// Forgets a peer whose connection closed.
    pub fn leave(&mut self, conn: ConnId) {
        self.peers.remove(&conn);
    }

    /// The changes accepted or written since the last [`saved`](Self::saved).
    pub fn unsaved(&self) -> Vec<StoredChange> {
        if self.doc.get_heads() == self.saved_heads {
            return Vec::new();
        }
        self.doc
            .get_changes(&self.saved_heads)
            .into_iter()
            .map(|change| StoredChange { hash: change.hash().0, bytes: change.raw_bytes().to_vec() })
            .collect()
    }

    /// Records that everything [`unsaved`](Self::unsaved) returned is durable.
    pub fn saved(&mut self) {
        self.saved_heads = self.doc.get_heads();
    }

    /// Generates the sync messages peers are owed: every peer when the document changed, else
    /// only the peers that spoke since the last flush.
    pub fn flush(&mut self, server: &PeerId, out: &mut Vec<(ConnId, WireMessage)>) {
        let heads = self.doc.get_heads();
        if heads != self.saved_heads {
            // The actor saves before it flushes; sending now would acknowledge changes that are
            // not durable.
            tracing::error!(doc = %self.id, "flush with unsaved changes; nothing sent");
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

    use super::{Replica, split_chunks};

    /// A peer may send its changes as one document chunk (Automerge does when it sends most of
    /// a document). Found by the fuzzer: they were read as an empty bundle and lost.
    #[test]
    fn changes_sent_as_a_document_chunk_are_taken() {
        let mut replica = Replica::new(DocumentId::random(), ActorId::random(), Automerge::new(), 0, usize::MAX);
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
        let received =
            replica.receive(1, &PeerId::from("client"), &message.encode(), |_, _| Ok(())).expect("a good message");
        assert_eq!(received.accepted, 3);
        assert_eq!(replica.doc().get_heads(), client.get_heads());
        assert_eq!(replica.doc().get(ROOT, "n").expect("get").map(|(v, _)| v.as_i64()), Some(Some(2)));
    }

    #[test]
    fn splitting_chunks_never_panics_on_garbage() {
        let magic = [0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1];
        assert!(split_chunks(&[]).is_ok_and(|c| c.is_empty()));
        assert!(split_chunks(&[1, 2, 3]).is_err());
        let mut huge = magic.to_vec();
        huge.extend([0xff; 12]);
        assert!(split_chunks(&huge).is_err(), "a length that overflows");
        let mut short = magic.to_vec();
        short.extend([5, 1, 2]);
        assert!(split_chunks(&short).is_err(), "a length past the end");
        let mut two = magic.to_vec();
        two.extend([1, 42]);
        two.extend(magic);
        two.extend([0]);
        assert_eq!(split_chunks(&two).map(|c| c.len()).ok(), Some(2));
    }
}
