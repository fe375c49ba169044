//! The sans-IO heart of a board: its Automerge document and the sync state of each peer.
//!
//! Messages go in ([`BoardCore::receive`]), messages come out ([`BoardCore::flush`]); nothing here
//! touches a socket, a clock or the disk. The actor around it ([`super::actor`]) owns the I/O and
//! keeps the one ordering rule that makes acknowledgements honest: it stores
//! [`BoardCore::unsaved`] changes and calls [`BoardCore::saved`] before it calls `flush`, so no
//! peer ever hears of a change that is not on disk.

use std::collections::HashMap;

use automerge::sync::{self, SyncDoc};
use automerge::{Automerge, ChangeHash};
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::WireMessage;

use crate::store::{StoredChange, StoredDoc};

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;

/// A document message from a peer, as the board sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocMessage {
    /// The peer asks for the document; `data` is its first sync message.
    Request(Vec<u8>),
    /// An Automerge sync message.
    Sync(Vec<u8>),
    /// Presence and other transient data, relayed to the board's other peers.
    Ephemeral { session_id: String, count: u64, data: Vec<u8> },
}

/// Why a peer's message was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the sync message is malformed: {0}")]
    Malformed(#[from] sync::ReadMessageError),
    #[error("the changes could not be applied: {0}")]
    Rejected(#[from] automerge::AutomergeError),
}

/// Why a stored document could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("the stored document is corrupt: {0}")]
pub struct LoadError(#[from] automerge::AutomergeError);

struct Peer {
    id: PeerId,
    sync: sync::State,
    /// The peer sent something since the last flush, so it may be owed an answer.
    owed: bool,
}

/// One board's document and its peers.
pub struct BoardCore {
    id: DocumentId,
    server: PeerId,
    doc: Automerge,
    peers: HashMap<ConnId, Peer>,
    /// Heads of the document as far as it is on disk.
    saved_heads: Vec<ChangeHash>,
    /// Heads of the document when peers were last sent sync messages.
    flushed_heads: Vec<ChangeHash>,
}

impl BoardCore {
    /// Rebuilds a board from what the store holds. CPU-bound: call it off the async runtime.
    pub fn load(id: DocumentId, server: PeerId, stored: &StoredDoc) -> Result<Self, LoadError> {
        let mut doc = if stored.snapshot.is_empty() { Automerge::new() } else { Automerge::load(&stored.snapshot)? };
        for change in &stored.changes {
            doc.load_incremental(change)?;
        }
        let heads = doc.get_heads();
        Ok(Self { id, server, doc, peers: HashMap::new(), saved_heads: heads.clone(), flushed_heads: heads })
    }

    pub fn doc(&self) -> &Automerge {
        &self.doc
    }

    pub fn has_peers(&self) -> bool {
        !self.peers.is_empty()
    }

    /// Takes one message from a peer. Ephemeral messages are relayed at once (into `out`); sync
    /// messages change the document and are answered at the next [`flush`](Self::flush).
    pub fn receive(
        &mut self,
        conn: ConnId,
        from: &PeerId,
        message: DocMessage,
        out: &mut Vec<(ConnId, WireMessage)>,
    ) -> Result<(), ReceiveError> {
        match message {
            DocMessage::Request(data) | DocMessage::Sync(data) => {
                let message = sync::Message::decode(&data)?;
                let peer = self.peers.entry(conn).or_insert_with(|| Peer {
                    id: from.clone(),
                    sync: sync::State::new(),
                    owed: false,
                });
                peer.owed = true;
                self.doc.receive_sync_message(&mut peer.sync, message)?;
            }
            DocMessage::Ephemeral { session_id, count, data } => {
                for (&other, peer) in &self.peers {
                    if other != conn {
                        out.push((
                            other,
                            WireMessage::Ephemeral {
                                document_id: self.id,
                                sender_id: from.clone(),
                                target_id: peer.id.clone(),
                                session_id: session_id.clone(),
                                count,
                                data: data.clone(),
                            },
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Forgets a peer whose connection closed.
    pub fn leave(&mut self, conn: ConnId) {
        self.peers.remove(&conn);
    }

    /// The changes accepted since the last [`saved`](Self::saved), ready for the store.
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
    pub fn flush(&mut self, out: &mut Vec<(ConnId, WireMessage)>) {
        let heads = self.doc.get_heads();
        if heads != self.saved_heads {
            // The actor saves before it flushes; this would be a bug, and sending would
            // acknowledge changes that are not durable.
            tracing::error!(board = %self.id, "flush with unsaved changes; nothing sent");
            return;
        }
        let changed = heads != self.flushed_heads;
        for (&conn, peer) in &mut self.peers {
            if !(changed || peer.owed) {
                continue;
            }
            peer.owed = false;
            if changed {
                // A peer whose change and a later heads-only message arrive in one batch has told
                // us heads equal to ours, and Automerge would then stay silent. But our heads are
                // the acknowledgement that its change is stored: always send them after a change.
                peer.sync.last_sent_heads.clear();
            }
            if let Some(message) = self.doc.generate_sync_message(&mut peer.sync) {
                out.push((
                    conn,
                    WireMessage::Sync {
                        document_id: self.id,
                        sender_id: self.server.clone(),
                        target_id: peer.id.clone(),
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
    use super::*;
    use hindsight_shared::schema::{self, Board, Note};
    use hindsight_shared::templates;

    fn board() -> BoardCore {
        let template = templates::find("start-stop-continue").expect("template");
        let doc = schema::new_board_document(automerge::ActorId::random(), "Retro", template).expect("doc");
        let stored = StoredDoc { snapshot: doc.save(), changes: vec![] };
        BoardCore::load(DocumentId::random(), "server".into(), &stored).expect("load")
    }

    /// An in-memory network: the core and some clients, each an Automerge document with its
    /// sync state. Delivers every message until nobody has anything to say, saving before every
    /// flush as the actor does.
    struct Net {
        core: BoardCore,
        clients: Vec<(Automerge, sync::State)>,
    }

    impl Net {
        fn new(clients: usize) -> Self {
            Self { core: board(), clients: (0..clients).map(|_| (Automerge::new(), sync::State::new())).collect() }
        }

        fn run_until_quiet(&mut self) {
            for _ in 0..50 {
                let mut quiet = true;
                for (i, (doc, state)) in self.clients.iter_mut().enumerate() {
                    if let Some(message) = doc.generate_sync_message(state) {
                        quiet = false;
                        let peer = PeerId::from(format!("client-{i}"));
                        let mut out = Vec::new();
                        self.core
                            .receive(i as ConnId, &peer, DocMessage::Sync(message.encode()), &mut out)
                            .expect("receive");
                    }
                }
                self.core.saved();
                let mut out = Vec::new();
                self.core.flush(&mut out);
                for (to, message) in out {
                    if let WireMessage::Sync { data, .. } = message {
                        quiet = false;
                        let (doc, state) = &mut self.clients[to as usize];
                        doc.receive_sync_message(state, sync::Message::decode(&data).expect("decode")).expect("apply");
                    }
                }
                if quiet {
                    return;
                }
            }
            panic!("sync did not settle");
        }
    }

    #[test]
    fn clients_converge_through_the_core() {
        let mut net = Net::new(3);
        net.run_until_quiet();
        for (i, (doc, _)) in net.clients.iter_mut().enumerate() {
            let mut tx = doc.transaction();
            let note = Note {
                id: format!("n{i}"),
                column: "start".into(),
                text: format!("from {i}"),
                created_at: 0,
                cluster: None,
            };
            schema::add_note(&mut tx, &note).expect("add");
            tx.commit();
        }
        net.run_until_quiet();
        let heads = net.core.doc().get_heads();
        for (doc, _) in &net.clients {
            assert_eq!(doc.get_heads(), heads);
            assert_eq!(Board::read(doc).expect("board").notes.len(), 3);
        }
    }

    #[test]
    fn nothing_is_sent_before_changes_are_saved() {
        let mut net = Net::new(1);
        net.run_until_quiet();
        let (client, state) = &mut net.clients[0];
        let core = &mut net.core;
        let mut tx = client.transaction();
        let note = Note { id: "n".into(), column: "stop".into(), text: "x".into(), created_at: 0, cluster: None };
        schema::add_note(&mut tx, &note).expect("add");
        tx.commit();
        let message = client.generate_sync_message(state).expect("message");
        let mut out = Vec::new();
        core.receive(0, &"client-0".into(), DocMessage::Sync(message.encode()), &mut out).expect("receive");
        assert_eq!(core.unsaved().len(), 1);
        core.flush(&mut out);
        assert!(out.is_empty(), "an unsaved change must not be acknowledged");
        core.saved();
        assert!(core.unsaved().is_empty());
        core.flush(&mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn garbage_sync_data_is_an_error_not_a_panic() {
        let mut core = board();
        let mut out = Vec::new();
        let result = core.receive(1, &"c".into(), DocMessage::Sync(vec![0x42, 0xff, 0xff]), &mut out);
        assert!(matches!(result, Err(ReceiveError::Malformed(_))));
    }
}
