//! [`ClientReplica`]: the client side of the sync protocol for one document, sans-IO. It owns the
//! client's copy of a document and its Automerge sync state with the one peer a client talks to,
//! the server, and knows what the server acknowledged; callers carry the bytes, keep the time and
//! store what they like.
//!
//! The browser, the test harness's peers, the load generator and the board core's in-memory test
//! network all speak through it, so what a client does with the server's answers is written once:
//! which heads count as acknowledged, what is still pending, and what a refusal takes away (the
//! refused changes and every change built on them, after which syncing starts afresh).
//!
//! It also reads the changes a sync message carries ([`changes_in`], [`carried_changes`]), chunk
//! by chunk as [`chunks::split`] finds them: bytes that are not whole chunks are an error, never
//! a silent truncation.

use std::collections::HashSet;

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, AutomergeError, Change, ChangeHash};

use crate::chunks::{self, ChunkError};
use crate::ids::{DocumentId, PeerId};
use crate::protocol::WireMessage;

/// Why a client replica could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the server's sync message does not decode: {0}")]
    Decode(#[from] sync::ReadMessageError),
    #[error("could not apply the server's changes: {0}")]
    Apply(AutomergeError),
    #[error("could not rebuild the document without the refused changes: {0}")]
    Rebuild(AutomergeError),
    #[error("the saved copy does not load: {0}")]
    Load(AutomergeError),
    #[error(transparent)]
    Chunks(#[from] ChunkError),
    #[error("saved acknowledged heads are {0} bytes, not whole 32-byte hashes")]
    AckedBytes(usize),
}

/// One document kept in sync with the server, as a client holds it.
#[derive(Debug)]
pub struct ClientReplica {
    id: DocumentId,
    doc: Automerge,
    sync: sync::State,
    /// The server's heads as it last told us, once every one of them was known here: every
    /// change not among their ancestors is ours and waits to be acknowledged. Kept across
    /// connections (and, by callers that store it, across reloads).
    acked: Vec<ChangeHash>,
    /// The heads of the server's latest sync message on this connection, known here or not.
    /// A refusal does not change what the server holds, so dropping refused changes keeps them;
    /// a new connection forgets them (the server may be another process).
    server_heads: Option<Vec<ChangeHash>>,
}

/// A sync message for the server, and what it asks of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub document_id: DocumentId,
    /// The encoded Automerge sync message.
    pub data: Vec<u8>,
    /// It carries changes, which the server answers (with its new heads, or a refusal).
    pub carries_changes: bool,
    /// The replica holds nothing yet, so this asks for the document (automerge-repo's
    /// `request`), which the server answers too.
    pub is_request: bool,
}

impl Outgoing {
    /// True when the server must answer this message: it carries changes, or asks for the
    /// document.
    pub fn expects_answer(&self) -> bool {
        self.is_request || self.carries_changes
    }

    /// The wire message: `request` for a document we do not have yet, `sync` otherwise.
    pub fn into_wire(self, sender_id: PeerId, target_id: PeerId) -> WireMessage {
        let Self { document_id, data, is_request, .. } = self;
        if is_request {
            WireMessage::Request { document_id, sender_id, target_id, data }
        } else {
            WireMessage::Sync { document_id, sender_id, target_id, data }
        }
    }
}

impl ClientReplica {
    /// An empty replica of `id`: its first message asks the server for the document.
    pub fn new(id: DocumentId) -> Self {
        Self::with_document(id, Automerge::new())
    }

    /// A replica of `id` that starts from `doc` (a document made here, say, to give the server).
    pub fn with_document(id: DocumentId, doc: Automerge) -> Self {
        Self { id, doc, sync: sync::State::new(), acked: Vec::new(), server_heads: None }
    }

    pub fn id(&self) -> DocumentId {
        self.id
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    /// The document, to make local changes; the next [`next_message`](Self::next_message) carries
    /// them.
    pub fn doc_mut(&mut self) -> &mut Automerge {
        &mut self.doc
    }

    /// Merges a saved copy of the document (`Automerge::save` bytes, or changes). Returns true
    /// if the heads changed.
    pub fn merge_saved(&mut self, saved: &[u8]) -> Result<bool, ClientError> {
        let before = self.doc.get_heads();
        self.doc.load_incremental(saved).map_err(ClientError::Load)?;
        Ok(self.doc.get_heads() != before)
    }

    /// Applies a sync message from the server. Returns true if the document's heads changed.
    pub fn receive(&mut self, data: &[u8]) -> Result<bool, ClientError> {
        self.receive_message(sync::Message::decode(data)?)
    }

    /// Applies a decoded sync message from the server (for a caller that reads it first).
    /// Returns true if the document's heads changed.
    pub fn receive_message(&mut self, message: sync::Message) -> Result<bool, ClientError> {
        let before = self.doc.get_heads();
        let theirs = message.heads.clone();
        self.doc.receive_sync_message(&mut self.sync, message).map_err(ClientError::Apply)?;
        if theirs.iter().all(|h| self.knows(h)) {
            self.acked.clone_from(&theirs);
        }
        self.server_heads = Some(theirs);
        Ok(self.doc.get_heads() != before)
    }

    /// The next sync message for the server, if the sync state has anything to say.
    pub fn next_message(&mut self) -> Option<Outgoing> {
        let is_request = self.doc.get_heads().is_empty();
        let message = self.doc.generate_sync_message(&mut self.sync)?;
        let carries_changes = !message.changes.is_empty();
        Some(Outgoing { document_id: self.id, data: message.encode(), carries_changes, is_request })
    }

    /// Lets the next message go although the last one is unanswered, as a peer answering a
    /// server message that crossed its own does.
    pub fn forget_in_flight(&mut self) {
        self.sync.in_flight = false;
    }

    /// Starts syncing afresh, as on a new connection: a new sync state, and the server's heads
    /// forgotten until it states them again. What it acknowledged stays acknowledged.
    pub fn restart_sync(&mut self) {
        self.sync = sync::State::new();
        self.server_heads = None;
    }

    /// The server's heads as it last told us, once all of them were known here.
    pub fn acked_heads(&self) -> &[ChangeHash] {
        &self.acked
    }

    /// The heads of the server's latest sync message on this connection, if it sent one.
    pub fn server_heads(&self) -> Option<&[ChangeHash]> {
        self.server_heads.as_deref()
    }

    /// True when the server's latest heads, every one of them known here, descend from `hash`
    /// (or are it): the server said it holds that change.
    pub fn server_has(&self, hash: &ChangeHash) -> bool {
        let Some(theirs) = self.server_heads.as_deref() else { return false };
        if !self.knows(hash) || theirs.is_empty() || !theirs.iter().all(|h| self.knows(h)) {
            return false;
        }
        !self.doc.get_changes(theirs).iter().any(|change| change.hash() == *hash)
    }

    /// How many local changes the server has not acknowledged.
    pub fn pending(&self) -> usize {
        let heads = self.doc.get_heads();
        if heads.is_empty() || heads == self.acked {
            return 0;
        }
        let acked: Vec<ChangeHash> = self.acked.iter().filter(|h| self.knows(h)).copied().collect();
        self.doc.get_changes_meta(&acked).len()
    }

    /// The acknowledged heads as bytes, to store.
    pub fn acked_bytes(&self) -> Vec<u8> {
        self.acked.iter().flat_map(|h| h.0).collect()
    }

    /// Restores acknowledged heads stored earlier, unless the server already acknowledged
    /// something on this replica (its word is newer). Bytes that are not whole hashes are an
    /// error, and change nothing.
    pub fn restore_acked(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let hashes = bytes.chunks_exact(32);
        if !hashes.remainder().is_empty() {
            return Err(ClientError::AckedBytes(bytes.len()));
        }
        if self.acked.is_empty() {
            self.acked = hashes.filter_map(|c| <[u8; 32]>::try_from(c).ok()).map(ChangeHash).collect();
        }
        Ok(())
    }

    /// Drops the `refused` changes and every change built on them, and starts syncing afresh
    /// (the server did so too). Returns the changes dropped, in causal order; later changes that
    /// do not build on a refused one stay.
    ///
    /// The rebuilt document has a fresh random actor: the refused changes may live on in a
    /// copy saved earlier, and a change made under their actor and sequence numbers would
    /// collide with them when that copy is merged back.
    pub fn drop_refused(
        &mut self,
        refused: impl IntoIterator<Item = ChangeHash>,
    ) -> Result<Vec<ChangeHash>, ClientError> {
        let refused: HashSet<ChangeHash> = refused.into_iter().collect();
        self.sync = sync::State::new();
        let mut dropped_set = HashSet::new();
        let mut dropped = Vec::new();
        let mut kept = Vec::new();
        // `get_changes` lists changes in causal order, so a change's dependencies come first.
        for change in self.doc.get_changes(&[]) {
            if refused.contains(&change.hash()) || change.deps().iter().any(|dep| dropped_set.contains(dep)) {
                dropped_set.insert(change.hash());
                dropped.push(change.hash());
            } else {
                kept.push(change);
            }
        }
        if !dropped.is_empty() {
            let mut rebuilt = Automerge::new();
            rebuilt.apply_changes(kept).map_err(ClientError::Rebuild)?;
            self.doc = rebuilt;
        }
        Ok(dropped)
    }

    fn knows(&self, hash: &ChangeHash) -> bool {
        self.doc.get_change_meta_by_hash(hash).is_some()
    }
}

/// Every change in `bytes`, which hold Automerge chunks back to back (saved documents, changes,
/// compressed changes, bundles), in order. Bytes that are not whole chunks, or a chunk that does
/// not decode, are an error.
pub fn changes_in(bytes: &[u8]) -> Result<Vec<Change>, ClientError> {
    let mut changes = Vec::new();
    for chunk in chunks::split(bytes)? {
        changes.extend(chunk.changes()?);
    }
    Ok(changes)
}

/// Every change a sync message carries (each of its entries may hold several chunks).
pub fn carried_changes(message: &sync::Message) -> Result<Vec<Change>, ClientError> {
    let mut changes = Vec::new();
    for entry in message.changes.iter() {
        changes.extend(changes_in(entry)?);
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{ActorId, ROOT, ReadDoc};

    use super::*;

    /// The server's side of one connection, as plainly as Automerge offers it.
    struct Server {
        doc: Automerge,
        sync: sync::State,
    }

    impl Server {
        fn new() -> Self {
            let mut server = Self { doc: Automerge::new(), sync: sync::State::new() };
            server.write("title", "Retro");
            server
        }

        fn write(&mut self, key: &str, value: &str) -> ChangeHash {
            let mut tx = self.doc.transaction();
            tx.put(ROOT, key, value).expect("put");
            tx.commit().0.expect("a change")
        }

        /// Delivers messages both ways until neither side has anything to say.
        fn settle(&mut self, client: &mut ClientReplica) {
            for _ in 0..20 {
                let mut quiet = true;
                if let Some(outgoing) = client.next_message() {
                    quiet = false;
                    let message = sync::Message::decode(&outgoing.data).expect("decode");
                    self.doc.receive_sync_message(&mut self.sync, message).expect("apply");
                }
                if let Some(message) = self.doc.generate_sync_message(&mut self.sync) {
                    quiet = false;
                    client.receive(&message.encode()).expect("receive");
                }
                if quiet {
                    return;
                }
            }
            panic!("the sync did not settle");
        }
    }

    /// A local change that sets `key`.
    fn local(client: &mut ClientReplica, key: &str, value: &str) -> ChangeHash {
        let mut tx = client.doc_mut().transaction();
        tx.put(ROOT, key, value).expect("put");
        tx.commit().0.expect("a change")
    }

    fn synced() -> (Server, ClientReplica) {
        let mut server = Server::new();
        let mut client = ClientReplica::new(DocumentId::random());
        server.settle(&mut client);
        (server, client)
    }

    #[test]
    fn an_empty_replica_requests_the_document_and_a_change_expects_an_answer() {
        let mut client = ClientReplica::new(DocumentId::random());
        let first = client.next_message().expect("a first message");
        assert!(first.is_request && !first.carries_changes && first.expects_answer());
        let (me, server) = (PeerId::from("me".to_owned()), PeerId::from("server".to_owned()));
        assert!(matches!(first.into_wire(me.clone(), server.clone()), WireMessage::Request { .. }));
        assert!(client.next_message().is_none(), "nothing more until the server answers");

        let (_server, mut client) = synced();
        local(&mut client, "title", "Ours");
        let outgoing = client.next_message().expect("a message with the change");
        assert!(!outgoing.is_request && outgoing.carries_changes && outgoing.expects_answer());
        assert!(matches!(outgoing.into_wire(me, server), WireMessage::Sync { .. }));
    }

    #[test]
    fn receiving_says_whether_the_heads_changed_and_what_the_server_acknowledged() {
        let mut server = Server::new();
        let mut client = ClientReplica::new(DocumentId::random());
        let request = client.next_message().expect("a request");
        let message = sync::Message::decode(&request.data).expect("decode");
        server.doc.receive_sync_message(&mut server.sync, message).expect("apply");
        let answer = server.doc.generate_sync_message(&mut server.sync).expect("an answer");
        assert!(client.receive(&answer.encode()).expect("receive"), "the document arrived");
        assert_eq!(client.doc().get_heads(), server.doc.get_heads());
        assert_eq!(client.acked_heads(), server.doc.get_heads());
        assert_eq!(client.server_heads(), Some(&server.doc.get_heads()[..]));
        server.settle(&mut client);
        let again = server.doc.generate_sync_message(&mut sync::State::new()).expect("a message");
        assert!(!client.receive(&again.encode()).expect("receive"), "nothing new");
        assert!(matches!(client.receive(&[1, 2, 3]), Err(ClientError::Decode(_))));
    }

    #[test]
    fn pending_counts_local_changes_until_the_server_acknowledges_them() {
        let (mut server, mut client) = synced();
        assert_eq!(client.pending(), 0);
        let first = local(&mut client, "a", "1");
        local(&mut client, "b", "2");
        assert_eq!(client.pending(), 2);
        assert!(!client.server_has(&first));
        server.settle(&mut client);
        assert_eq!(client.pending(), 0);
        assert!(client.server_has(&first));
        // Changes from the server are never pending.
        server.write("c", "3");
        server.settle(&mut client);
        assert_eq!(client.pending(), 0);
    }

    #[test]
    fn acknowledged_heads_are_saved_and_restored_as_bytes() {
        let (mut server, mut client) = synced();
        local(&mut client, "a", "1");
        server.settle(&mut client);
        let bytes = client.acked_bytes();
        assert_eq!(bytes.len(), 32);

        let mut reloaded = ClientReplica::new(client.id());
        reloaded.merge_saved(&client.doc().save()).expect("load");
        assert_eq!(reloaded.pending(), 2, "without its acknowledged heads, every change is pending");
        reloaded.restore_acked(&bytes).expect("restore");
        assert_eq!(reloaded.acked_heads(), client.acked_heads());
        assert_eq!(reloaded.pending(), 0);
        assert!(matches!(reloaded.restore_acked(&bytes[..31]), Err(ClientError::AckedBytes(31))));
        // The server's word on this replica is newer than what was stored.
        reloaded.restore_acked(&[7; 32]).expect("restore");
        assert_eq!(reloaded.acked_heads(), client.acked_heads());
    }

    #[test]
    fn dropping_a_refused_change_drops_what_builds_on_it_and_keeps_the_rest() {
        let (mut server, mut client) = synced();
        let refused = local(&mut client, "phase", "vote");
        let built_on_it = local(&mut client, "title", "Built on it");
        // A change from the server that arrives later, built on nothing refused.
        let actor = client.doc().get_actor().clone();
        let unrelated = server.write("note", "Published");
        let message = server.doc.generate_sync_message(&mut server.sync).expect("a message");
        client.receive(&message.encode()).expect("receive");
        assert_eq!(client.pending(), 2);

        let dropped = client.drop_refused([refused]).expect("dropped");
        assert_eq!(dropped, [refused, built_on_it]);
        assert!(client.doc().get_change_by_hash(&unrelated).is_some(), "the unrelated change stays");
        assert_eq!(client.doc().get_heads(), server.doc.get_heads());
        assert_eq!(client.doc().get(ROOT, "phase").expect("read"), None);
        assert_ne!(client.doc().get_actor(), &actor, "a fresh actor");
        assert_eq!(client.pending(), 0);

        // Syncing starts afresh, on both sides, and converges.
        server.sync = sync::State::new();
        assert!(client.next_message().is_some(), "a fresh sync state speaks first");
        server.settle(&mut client);
        assert_eq!(client.doc().get_heads(), server.doc.get_heads());
    }

    #[test]
    fn dropping_changes_it_does_not_hold_changes_nothing() {
        let (_server, mut client) = synced();
        let heads = client.doc().get_heads();
        let actor = client.doc().get_actor().clone();
        assert!(client.drop_refused([ChangeHash([9; 32])]).expect("nothing").is_empty());
        assert_eq!((client.doc().get_heads(), client.doc().get_actor()), (heads, &actor));
    }

    #[test]
    fn the_changes_of_concatenated_chunks_are_read_and_malformed_input_is_an_error() {
        let mut doc = Automerge::new().with_actor(ActorId::random());
        let mut hashes = Vec::new();
        for i in 0..3 {
            let mut tx = doc.transaction();
            tx.put(ROOT, "n", i).expect("put");
            hashes.push(tx.commit().0.expect("a change"));
        }
        let mut bytes: Vec<u8> = doc.get_changes(&[]).iter().flat_map(|c| c.raw_bytes().to_vec()).collect();
        let read: Vec<ChangeHash> = changes_in(&bytes).expect("three chunks").iter().map(Change::hash).collect();
        assert_eq!(read, hashes);
        // A saved document, then a change: both read.
        let mut saved = doc.save();
        saved.extend(doc.get_last_local_change().expect("a change").raw_bytes());
        assert_eq!(changes_in(&saved).expect("two chunks").len(), 4);

        // A chunk cut short is an error, not the chunks before it.
        bytes.truncate(bytes.len() - 3);
        assert!(matches!(changes_in(&bytes), Err(ClientError::Chunks(_))));
        // Trailing bytes that are not a chunk, too.
        let mut trailing = doc.save();
        trailing.extend([0x85, 0x6f]);
        assert!(matches!(changes_in(&trailing), Err(ClientError::Chunks(_))));
        // A whole chunk whose body is not a change.
        let mut noise = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, 1, 3, 1, 2, 3];
        assert!(changes_in(&noise).is_err());
        noise.clear();
        assert!(changes_in(&noise).expect("nothing").is_empty());

        let message = sync::Message {
            heads: doc.get_heads(),
            need: Vec::new(),
            have: Vec::new(),
            changes: vec![doc.save()].into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        assert_eq!(carried_changes(&message).expect("a document").len(), 3);
    }
}
