//! [`SyncPeer`]: one protocol connection holding replicas of one or more documents (a board, a
//! desk), synced with the server the way a browser tab does: `request` with a sync message from
//! an empty document, then `sync` messages both ways, answering every message the server sends.
//!
//! It also behaves like the browser when the server refuses a change: it drops the refused
//! changes and everything built on them, and starts a fresh sync state for that document. Every
//! notice the server sends (presence rosters, refusals) is decoded and kept, as is every raw
//! frame (in the [`WsClient`]), so tests can check what a peer was told.
//!
//! A peer that syncs only the board is a *viewer*: it may read, and every change it makes to the
//! board is refused. [`Participant`](crate::Participant) builds on this with a desk.

use std::collections::{HashMap, VecDeque};

use anyhow::{Context, bail, ensure};
use automerge::sync;
use automerge::transaction::{CommitOptions, Transaction};
use automerge::{ActorId, Author, Automerge, ChangeHash, ReadDoc};
use hindsight_shared::client::ClientReplica;
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::presence::{Notice, PresenceEntry, merge_roster};
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema::Board;

use crate::within;
use crate::ws::WsClient;

/// The session id of the `ephemeral` messages [`SyncPeer::send_barrier`] sends.
pub const BARRIER_SESSION: &str = "hindsight-tests-barrier";

/// What the server made of one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Stored: the server's heads now include it.
    Accepted,
    /// Refused, with the reason the server gave (or "depends on a refused change" for a change
    /// dropped because one it builds on was refused).
    Refused(String),
}

impl Verdict {
    pub fn is_refused(&self) -> bool {
        matches!(self, Verdict::Refused(_))
    }

    /// `Ok` if accepted, an error with the server's reason if refused.
    pub fn accepted(self) -> anyhow::Result<()> {
        match self {
            Verdict::Accepted => Ok(()),
            Verdict::Refused(reason) => bail!("the server refused the change: {reason}"),
        }
    }
}

/// How to commit a change. The default is what the real client does: a fresh random actor for
/// every change, time 0, no message, no author.
#[derive(Debug, Clone)]
pub struct ChangeOptions {
    /// Commit under a new random actor (else the document's current actor).
    pub fresh_actor: bool,
    /// The change's timestamp.
    pub time: i64,
    pub message: Option<String>,
    /// Author bytes to attach (Automerge's author footer).
    pub author: Option<Vec<u8>>,
}

impl Default for ChangeOptions {
    fn default() -> Self {
        Self { fresh_actor: true, time: 0, message: None, author: None }
    }
}

/// A change this peer made and sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeChange {
    pub doc: DocumentId,
    pub hash: ChangeHash,
    pub actor: ActorId,
}

/// A point in a peer's history of received frames, to ask later what arrived since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(usize);

/// True when the server has stored every change `replica` holds: its latest heads, all known
/// here, descend from ours. (The server sends only what is on disk, so its heads are stored.)
fn acknowledged(replica: &ClientReplica) -> bool {
    let heads = replica.doc().get_heads();
    !heads.is_empty() && heads.iter().all(|head| replica.server_has(head))
}

/// One connection and the documents it syncs.
pub struct SyncPeer {
    client: WsClient,
    me: PeerId,
    server: PeerId,
    replicas: Vec<ClientReplica>,
    /// The document [`board`](Self::board), [`heads`](Self::heads) and
    /// [`pump_until`](Self::pump_until) are about: the board.
    primary: Option<DocumentId>,
    /// Every notice the server sent, with the document it was about.
    notices: Vec<(DocumentId, Notice)>,
    /// The presence roster, as the server's full rosters and their updates built it.
    roster: Option<Vec<PresenceEntry>>,
    /// Changes the server refused or this peer dropped, and why.
    refused: HashMap<ChangeHash, String>,
    made: Vec<MadeChange>,
    /// `ephemeral` messages other peers sent, waiting for [`next_ephemeral`](Self::next_ephemeral).
    ephemera: VecDeque<WireMessage>,
    barriers_sent: u64,
}

impl SyncPeer {
    /// Connects to `ws_url` and joins, with no document yet.
    pub async fn connect(ws_url: &str) -> anyhow::Result<Self> {
        let mut client = WsClient::connect(ws_url).await?;
        let me = PeerId::random();
        let server = client.join(&me).await?;
        Ok(Self {
            client,
            me,
            server,
            replicas: Vec::new(),
            primary: None,
            notices: Vec::new(),
            roster: None,
            refused: HashMap::new(),
            made: Vec::new(),
            ephemera: VecDeque::new(),
            barriers_sent: 0,
        })
    }

    /// A viewer: connects, joins, requests the board and syncs until its document has arrived.
    pub async fn open(ws_url: &str, board_id: DocumentId) -> anyhow::Result<Self> {
        let mut peer = Self::connect(ws_url).await?;
        peer.open_board(board_id).await?;
        Ok(peer)
    }

    /// Requests the board and syncs until it has arrived; it becomes the primary document.
    pub async fn open_board(&mut self, board_id: DocumentId) -> anyhow::Result<()> {
        self.primary = Some(board_id);
        self.request(board_id).await?;
        self.pump("the board document to arrive", |peer| peer.try_board().is_ok()).await
    }

    /// Sends `request` for a document (a sync message from an empty replica) without waiting.
    pub async fn request(&mut self, doc: DocumentId) -> anyhow::Result<()> {
        ensure!(self.replica(doc).is_none(), "{doc} was already requested");
        let mut replica = ClientReplica::new(doc);
        let first = replica.next_message().context("an empty document has a message")?;
        ensure!(first.is_request, "an empty document asks for the document");
        self.replicas.push(replica);
        self.client.send(&first.into_wire(self.me.clone(), self.server.clone())).await
    }

    /// Syncs until the document has arrived (has any change at all).
    pub async fn wait_arrived(&mut self, doc: DocumentId) -> anyhow::Result<()> {
        self.pump(&format!("document {doc} to arrive"), |peer| {
            peer.replica(doc).is_some_and(|r| !r.doc().get_heads().is_empty())
        })
        .await
    }

    /// The peer id this connection joined with.
    pub fn peer_id(&self) -> &PeerId {
        &self.me
    }

    /// The server's peer id.
    pub fn server_id(&self) -> &PeerId {
        &self.server
    }

    fn primary(&self) -> DocumentId {
        self.primary.expect("this peer has no board open")
    }

    fn replica(&self, doc: DocumentId) -> Option<&ClientReplica> {
        self.replicas.iter().find(|r| r.id() == doc)
    }

    fn replica_mut(&mut self, doc: DocumentId) -> anyhow::Result<&mut ClientReplica> {
        self.replicas.iter_mut().find(|r| r.id() == doc).with_context(|| format!("{doc} is not open on this peer"))
    }

    /// The replica of a document this peer opened.
    pub fn doc_of(&self, doc: DocumentId) -> &Automerge {
        self.replica(doc).unwrap_or_else(|| panic!("{doc} is not open on this peer")).doc()
    }

    /// The heads of the board replica.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.doc().get_heads()
    }

    /// The board replica.
    pub fn doc(&self) -> &Automerge {
        self.doc_of(self.primary())
    }

    /// The board as this replica sees it now.
    pub fn board(&self) -> Board {
        self.try_board().expect("the replica's document is not a board")
    }

    fn try_board(&self) -> anyhow::Result<Board> {
        Ok(Board::read(self.doc())?)
    }

    /// Every notice the server sent this connection, with the document it was about.
    pub fn notices(&self) -> &[(DocumentId, Notice)] {
        &self.notices
    }

    /// The presence roster as the server last told it (whole, then its updates).
    pub fn roster(&self) -> Option<&[PresenceEntry]> {
        self.roster.as_deref()
    }

    /// How many refusals the server sent.
    pub fn refusals(&self) -> usize {
        self.notices.iter().filter(|(_, n)| matches!(n, Notice::Refused { .. })).count()
    }

    /// Every change this peer made, in order.
    pub fn made_changes(&self) -> &[MadeChange] {
        &self.made
    }

    /// Every binary frame this connection received, byte for byte.
    pub fn frames(&self) -> &[Vec<u8>] {
        self.client.received_frames()
    }

    /// The frames received so far, to compare with later ([`frames_since`](Self::frames_since)).
    pub fn mark(&self) -> Mark {
        Mark(self.frames().len())
    }

    pub fn frames_since(&self, mark: Mark) -> &[Vec<u8>] {
        &self.frames()[mark.0..]
    }

    /// Makes one change to `doc` and sends it, without waiting for the server's verdict.
    pub async fn send_change(
        &mut self,
        doc: DocumentId,
        options: &ChangeOptions,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<ChangeHash> {
        let hash = self.commit_local(doc, options, write)?;
        self.push(doc).await?;
        Ok(hash)
    }

    /// Makes one change to `doc` and sends it, unless it changes nothing (then `None`).
    pub async fn send_change_if_any(
        &mut self,
        doc: DocumentId,
        options: &ChangeOptions,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<ChangeHash>> {
        let hash = self.try_commit(doc, options, write)?;
        if hash.is_some() {
            self.push(doc).await?;
        }
        Ok(hash)
    }

    /// Makes one change to `doc` and tells nobody: the next sync message will carry it.
    pub fn commit_local(
        &mut self,
        doc: DocumentId,
        options: &ChangeOptions,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<ChangeHash> {
        self.try_commit(doc, options, write)?.context("the change changed nothing")
    }

    fn try_commit(
        &mut self,
        doc: DocumentId,
        options: &ChangeOptions,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<ChangeHash>> {
        let replica = self.replica_mut(doc)?.doc_mut();
        let previous = replica.get_actor().clone();
        if options.fresh_actor {
            let actor = hindsight_shared::ids::fresh_board_actor(replica);
            replica.set_actor(actor);
        }
        if let Some(author) = &options.author {
            replica.set_author(Some(Author::from(author.clone())));
        }
        let mut tx = replica.transaction();
        let hash = match write(&mut tx) {
            Ok(()) => {
                let mut commit = CommitOptions::default().with_time(options.time);
                if let Some(message) = &options.message {
                    commit = commit.with_message(message.clone());
                }
                tx.commit_with(commit).0
            }
            Err(e) => {
                tx.rollback();
                return Err(e.context("the change could not be made"));
            }
        };
        if options.author.is_some() {
            // Setting an author picks a new actor; later changes are made without either.
            replica.set_author(None);
            replica.set_actor(previous);
        }
        let Some(hash) = hash else { return Ok(None) };
        let actor = replica.get_change_by_hash(&hash).context("a change we just made")?.actor_id().clone();
        self.made.push(MadeChange { doc, hash, actor });
        Ok(Some(hash))
    }

    /// Sends a hand-made sync message about `doc`, outside the sync state: `heads` as ours,
    /// carrying exactly the changes `carrying`.
    pub async fn send_sync_by_hand(
        &mut self,
        doc: DocumentId,
        heads: Vec<ChangeHash>,
        carrying: &[ChangeHash],
    ) -> anyhow::Result<()> {
        let replica = self.replica(doc).context("the document is not open")?;
        let changes: Vec<Vec<u8>> = carrying
            .iter()
            .map(|hash| {
                replica.doc().get_change_by_hash(hash).map(|c| c.raw_bytes().to_vec()).context("a change we hold")
            })
            .collect::<anyhow::Result<_>>()?;
        let message = sync::Message {
            heads,
            need: Vec::new(),
            have: Vec::new(),
            changes: changes.into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        let sync = WireMessage::Sync {
            document_id: doc,
            sender_id: self.me.clone(),
            target_id: self.server.clone(),
            data: message.encode(),
        };
        self.client.send(&sync).await
    }

    /// Syncs until the server has stored the change (its heads include it) or refused it.
    pub async fn verdict(&mut self, doc: DocumentId, hash: ChangeHash) -> anyhow::Result<Verdict> {
        self.pump("the server's verdict on our change", |peer| {
            peer.refused.contains_key(&hash) || peer.replica(doc).is_some_and(|r| r.server_has(&hash))
        })
        .await?;
        Ok(match self.refused.get(&hash) {
            Some(reason) => Verdict::Refused(reason.clone()),
            None => Verdict::Accepted,
        })
    }

    /// Makes any change to `doc` (no rule is checked here), sends it and waits for the verdict.
    pub async fn raw_change(
        &mut self,
        doc: DocumentId,
        options: &ChangeOptions,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Verdict> {
        let hash = self.send_change(doc, options, write).await?;
        self.verdict(doc, hash).await
    }

    /// Makes any change to the board as the real client would, and waits for the verdict.
    pub async fn raw_board_change(
        &mut self,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Verdict> {
        self.raw_change(self.primary(), &ChangeOptions::default(), write).await
    }

    /// Receives and answers sync messages until `done` holds for the board.
    pub async fn pump_until(&mut self, what: &str, mut done: impl FnMut(&Board) -> bool) -> anyhow::Result<()> {
        self.pump(what, |peer| peer.try_board().is_ok_and(|board| done(&board))).await
    }

    /// Receives and answers sync messages until the board replica has exactly `heads`.
    pub async fn pump_until_heads(&mut self, heads: &[ChangeHash]) -> anyhow::Result<()> {
        let mut want = heads.to_vec();
        want.sort_unstable();
        self.pump(&format!("heads {want:?}"), |peer| peer.heads() == want).await
    }

    /// Receives and answers sync messages until the server has stored every change of every
    /// document this peer holds, which it shows by sending heads that descend from all of ours.
    pub async fn wait_acknowledged(&mut self) -> anyhow::Result<()> {
        self.pump("the server to acknowledge our changes", |peer| peer.replicas.iter().all(acknowledged)).await
    }

    /// Sends a sync message about `doc` that restates this replica's heads and carries no
    /// changes, as a peer does when it answers a server message that crossed its own change.
    pub async fn restate_heads(&mut self, doc: DocumentId) -> anyhow::Result<()> {
        // A peer answering the server may speak although its last message is still unanswered.
        self.replica_mut(doc)?.forget_in_flight();
        ensure!(self.push(doc).await?, "the sync state had nothing to restate");
        Ok(())
    }

    /// Sends an `ephemeral` message (presence, say) about the board.
    pub async fn send_ephemeral(&mut self, session_id: &str, count: u64, data: &[u8]) -> anyhow::Result<()> {
        let message = WireMessage::Ephemeral {
            document_id: self.primary(),
            sender_id: self.me.clone(),
            target_id: self.server.clone(),
            session_id: session_id.to_owned(),
            count,
            data: data.to_vec(),
        };
        self.client.send(&message).await
    }

    /// Sends a barrier: an `ephemeral` message the board relays to its other peers after
    /// everything it did for earlier messages of this connection. Returns its number, for
    /// [`wait_barrier`](Self::wait_barrier).
    pub async fn send_barrier(&mut self) -> anyhow::Result<u64> {
        self.barriers_sent += 1;
        let count = self.barriers_sent;
        self.send_ephemeral(BARRIER_SESSION, count, &[0xa0]).await?;
        Ok(count)
    }

    /// Syncs until `from`'s barrier number `count` arrived: every frame the board sent us
    /// because of what `from` sent before it has arrived too.
    pub async fn wait_barrier(&mut self, from: &PeerId, count: u64) -> anyhow::Result<()> {
        let is_it = |m: &WireMessage| {
            matches!(m, WireMessage::Ephemeral { sender_id, session_id, count: c, .. }
                if sender_id == from && session_id == BARRIER_SESSION && *c == count)
        };
        self.pump("a barrier", |peer| peer.ephemera.iter().any(is_it)).await?;
        self.ephemera.retain(|m| !is_it(m));
        Ok(())
    }

    /// The next `ephemeral` message another peer sent (barriers aside), syncing meanwhile.
    pub async fn next_ephemeral(&mut self) -> anyhow::Result<WireMessage> {
        let relayed =
            |m: &WireMessage| !matches!(m, WireMessage::Ephemeral { session_id, .. } if session_id == BARRIER_SESSION);
        self.pump("an ephemeral message", |peer| peer.ephemera.iter().any(relayed)).await?;
        let at = self.ephemera.iter().position(relayed).context("pump returned with a message waiting")?;
        self.ephemera.remove(at).context("the message is there")
    }

    /// Opens a new connection to `ws_url` in place of this one, as a browser does after its
    /// connection dropped: the replicas stay, with any changes the server may not have, sync
    /// states start afresh, and each document is announced again, in the order it was opened
    /// (a desk before its board), with a sync message of what the replica holds. Does not wait
    /// for answers.
    pub async fn reconnect(&mut self, ws_url: &str) -> anyhow::Result<()> {
        let mut client = WsClient::connect(ws_url).await?;
        self.server = client.join(&self.me).await?;
        self.client = client;
        self.ephemera.clear();
        let docs: Vec<DocumentId> = self.replicas.iter().map(ClientReplica::id).collect();
        for doc in docs {
            let me = self.me.clone();
            let server = self.server.clone();
            let replica = self.replica_mut(doc)?;
            replica.restart_sync();
            let message = replica.next_message().context("a fresh state has a message")?;
            self.client.send(&message.into_wire(me, server)).await?;
        }
        Ok(())
    }

    /// Sends the server whatever the sync state says it lacks of `doc` (changes committed with
    /// [`commit_local`](Self::commit_local), say); true if there was something to send.
    pub async fn send_sync(&mut self, doc: DocumentId) -> anyhow::Result<bool> {
        self.push(doc).await
    }

    /// Closes the connection politely.
    pub async fn close(self) -> anyhow::Result<()> {
        self.client.close().await
    }

    /// The underlying connection, to watch how it ends or send frames by hand.
    pub fn client(&mut self) -> &mut WsClient {
        &mut self.client
    }

    /// Handles messages until `done`, failing on anything a healthy sync would not produce.
    /// Bounded by the harness timeout as a whole, not only per message.
    pub async fn pump(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) -> anyhow::Result<()> {
        within(what, async {
            while !done(self) {
                self.step().await.with_context(|| format!("while waiting for {what}"))?;
            }
            Ok(())
        })
        .await
    }

    /// Receives one message and handles it.
    pub async fn step(&mut self) -> anyhow::Result<()> {
        let message = self.client.recv().await?;
        self.handle(message).await
    }

    async fn handle(&mut self, message: WireMessage) -> anyhow::Result<()> {
        match message {
            WireMessage::Sync { document_id, sender_id, target_id, data } => {
                ensure!(
                    sender_id == self.server && target_id == self.me,
                    "a sync message from {sender_id} to {target_id}"
                );
                self.replica_mut(document_id).context("a sync message")?.receive(&data)?;
                self.push(document_id).await?;
                Ok(())
            }
            WireMessage::Ephemeral { document_id, ref sender_id, ref data, .. } if *sender_id == self.server => {
                let notice = Notice::decode(data).context("the server's ephemeral message is not a notice")?;
                if let Notice::Refused { reason, changes } = &notice {
                    self.recover(document_id, reason, changes).await?;
                }
                if let Notice::Presence { participants, full, .. } = &notice {
                    let roster = self.roster.get_or_insert_with(Vec::new);
                    merge_roster(roster, participants.clone(), *full);
                }
                self.notices.push((document_id, notice));
                Ok(())
            }
            // Other peers' presence: not part of any document; kept for `next_ephemeral`.
            WireMessage::Ephemeral { .. } => {
                self.ephemera.push_back(message);
                Ok(())
            }
            WireMessage::DocUnavailable { document_id, .. } => {
                bail!("the server says {document_id} is unavailable")
            }
            WireMessage::Error { message } => bail!("the server sent an error: {message}"),
            other => bail!("unexpected message {other:?}"),
        }
    }

    /// What the browser does with a refusal: forget the refused changes and what depends on
    /// them, start a fresh sync state, and sync again.
    async fn recover(&mut self, doc: DocumentId, reason: &str, changes: &[[u8; 32]]) -> anyhow::Result<()> {
        let refused: Vec<ChangeHash> = changes.iter().map(|bytes| ChangeHash(*bytes)).collect();
        for hash in &refused {
            self.refused.insert(*hash, reason.to_owned());
        }
        let replica = self.replica_mut(doc).context("a refusal")?;
        // Unlike the browser, which stores its copy and so takes a fresh actor, the harness keeps
        // its actor: its changes live nowhere else, and a test's desk changes stay under one actor.
        let actor = replica.doc().get_actor().clone();
        let dropped = replica.drop_refused(refused)?;
        replica.doc_mut().set_actor(actor);
        for hash in dropped {
            self.refused.entry(hash).or_insert_with(|| "depends on a refused change".to_owned());
        }
        self.push(doc).await?;
        Ok(())
    }

    /// Sends the server whatever our sync state says it lacks; true if there was something.
    async fn push(&mut self, doc: DocumentId) -> anyhow::Result<bool> {
        if let Some(message) = self.replica_mut(doc)?.next_message() {
            // Always `sync`: this peer asked for each document when it opened it.
            let sync = WireMessage::Sync {
                document_id: doc,
                sender_id: self.me.clone(),
                target_id: self.server.clone(),
                data: message.data,
            };
            self.client.send(&sync).await?;
            return Ok(true);
        }
        Ok(false)
    }
}

/// True if a frame is a barrier ([`SyncPeer::send_barrier`]) relayed from another peer.
pub fn is_barrier(frame: &[u8]) -> bool {
    matches!(WireMessage::decode(frame), Ok(WireMessage::Ephemeral { session_id, .. }) if session_id == BARRIER_SESSION)
}

/// True if a frame is a presence roster (or an update of it) from the server: it says who is
/// here, nothing about any change, and arrives when the server's roster interval says.
pub fn is_presence(frame: &[u8]) -> bool {
    matches!(WireMessage::decode(frame), Ok(WireMessage::Ephemeral { data, .. })
        if matches!(Notice::decode(&data), Ok(Notice::Presence { .. })))
}

/// True for frames that tell nothing about the documents: barriers and presence.
pub fn is_chatter(frame: &[u8]) -> bool {
    is_barrier(frame) || is_presence(frame)
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
