//! A board in memory: the handle connections talk to, the link it talks back on, and its actor.
//!
//! - [`replica`]: one document and its peers' sync states; the guarded receive of changes.
//! - [`guards`]: the rules of `shared::rules` applied to a board's and a desk's replica.
//! - [`desk`]: a participant and their desk as the board holds it (loaded or only counted).
//! - [`govern`]: the server's own writes: publishing notes, counting votes.
//! - [`presence`]: the roster, sent whole once and then as changes.
//! - [`core`]: the sans-IO board: routing, identity, admission; events in, effects out.
//! - [`actor`]: the one task per board that owns a [`core::BoardCore`], loads its desks, stores
//!   accepted changes and answers peers, doing the CPU work off the async workers.
//!
//! A connection sends [`BoardMsg`]s through a [`BoardHandle`]; the board answers through the
//! [`PeerLink`] that came with the message. Neither side ever holds a lock the other needs.
//!
//! Invariant: a board knows whoever keeps it only as a [`Keeper`] and its peers only as
//! [`PeerLink`]s: nothing in `board/` imports the registry, connections or routes (tidy:
//! board-knows-no-keeper). Every queue is bounded: the inbox by the registry, each outbox in frames and bytes.

pub mod actor;
pub mod core;
pub mod desk;
pub mod govern;
pub mod guards;
pub mod presence;
pub mod replica;
#[cfg(test)]
pub(crate) mod testnet;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hindsight_shared::api::{ClaimFacilitator, JoinBoard, JoinedBoard};
use hindsight_shared::ids::{DocumentId, PeerId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use self::core::DocMessage;
use self::replica::ConnId;
use crate::closing::CloseReason;

/// What a connection (or the HTTP API) tells a board.
#[derive(Debug)]
pub enum BoardMsg {
    /// A message from the peer behind `link` about `doc`: the board or one of its desks.
    FromPeer { link: PeerLink, doc: DocumentId, message: DocMessage },
    /// The connection closed: forget its peer.
    Left { conn: ConnId },
    /// The board as it stands (everything in it is stored), or `None` if there is no such board.
    Snapshot { reply: oneshot::Sender<Option<hindsight_shared::schema::Board>> },
    /// Someone joins: the board makes and stores their desk, and answers who they are once the
    /// board knows them and any change their joining made is stored.
    Join { join: JoinBoard, reply: oneshot::Sender<Result<JoinedBoard, AdmitError>> },
    /// A participant (who proves who they are with their desk id) shows the facilitator key:
    /// they become the facilitator. Answered once that is stored.
    Claim { claim: ClaimFacilitator, reply: oneshot::Sender<Result<(), AdmitError>> },
    /// For a team's ledger (a board answers that there is no such team).
    Team(crate::team::TeamMsg),
    /// From the board's team: past causes its clusters are like.
    Recurrences(Vec<hindsight_shared::schema::Recurrence>),
    /// An alert webhook's events, with the token it came with; answered with how many were new,
    /// once they are stored.
    Alerts {
        token: String,
        events: Vec<hindsight_shared::timeline::Event>,
        reply: oneshot::Sender<Result<usize, AlertError>>,
    },
}

/// Why a board did not take an alert webhook's events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    #[error("there is no such board")]
    NoBoard,
    #[error("the alert token does not match this board")]
    WrongToken,
    #[error("too many alert payloads for this board: at most {0} a minute")]
    TooMany(u32),
    #[error("the board failed: {0}")]
    Failed(String),
}

/// Why a board did not take someone in, or did not hand them the facilitator role.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("there is no such board")]
    NoBoard,
    #[error("the facilitator key does not match this board")]
    WrongKey,
    #[error("you have not joined this board")]
    NotJoined,
    #[error("this board is full: it takes at most {0} participants")]
    Full(usize),
    /// The name cannot be shown; the sentence says why.
    #[error("{0}")]
    BadName(String),
    /// Storage failed, or the board stopped: our fault, not the caller's.
    #[error("the board failed: {0}")]
    Failed(String),
}

impl From<BoardGone> for AdmitError {
    fn from(gone: BoardGone) -> Self {
        Self::Failed(gone.to_string())
    }
}

/// The board's task has stopped; ask the registry for a fresh handle.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the board has stopped")]
pub struct BoardGone;

/// What a board's actor asks of whoever keeps boards in memory (the registry), so that the actor
/// need not know the registry.
pub trait Keeper: Send + Sync + 'static {
    /// Lets the board go if nobody but the keeper holds its handle; true if it went.
    fn release_if_unused(&self, id: DocumentId) -> bool;
    /// Lets the board go whatever holds it (after a failure).
    fn release(&self, id: DocumentId);
    /// Notes that `desk` (just made for someone who joined) belongs to `board`, so connections
    /// that name the desk find the board.
    fn remember_desk(&self, desk: DocumentId, board: DocumentId);
    /// Sends a message to another document's actor (a board's news to its team), without
    /// waiting for it.
    fn tell(&self, doc: DocumentId, message: BoardMsg);
}

/// A cheap, cloneable way to reach one board's actor.
///
/// The registry keeps one clone and every connection that opened the board keeps another. The
/// actor evicts itself only when the registry's clone is the last one, so no connection can hold
/// a handle to a board that has left memory.
#[derive(Debug, Clone)]
pub struct BoardHandle(Arc<HandleInner>);

#[derive(Debug)]
struct HandleInner {
    id: DocumentId,
    inbox: mpsc::Sender<BoardMsg>,
}

impl BoardHandle {
    pub(crate) fn new(id: DocumentId, inbox: mpsc::Sender<BoardMsg>) -> Self {
        Self(Arc::new(HandleInner { id, inbox }))
    }

    pub fn id(&self) -> DocumentId {
        self.0.id
    }

    /// Queues a message for the board, waiting while its inbox is full (backpressure).
    pub async fn send(&self, message: BoardMsg) -> Result<(), BoardGone> {
        self.0.inbox.send(message).await.map_err(|_| BoardGone)
    }

    /// Queues a message if the inbox has room now; gives it back if not (or if the board
    /// stopped: then sending it later fails too).
    pub fn try_send(&self, message: BoardMsg) -> Result<(), Box<BoardMsg>> {
        self.0.inbox.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => Box::new(m),
        })
    }

    /// Joins the board: see [`BoardMsg::Join`].
    pub async fn join(&self, join: JoinBoard) -> Result<JoinedBoard, AdmitError> {
        let (reply, answer) = oneshot::channel();
        self.send(BoardMsg::Join { join, reply }).await?;
        answer.await.map_err(|_| BoardGone)?
    }

    /// Takes the facilitator role with the key: see [`BoardMsg::Claim`].
    pub async fn claim(&self, claim: ClaimFacilitator) -> Result<(), AdmitError> {
        let (reply, answer) = oneshot::channel();
        self.send(BoardMsg::Claim { claim, reply }).await?;
        answer.await.map_err(|_| BoardGone)?
    }

    /// Asks the team's ledger, waiting for the answer: see [`crate::team::TeamMsg`].
    pub async fn ask_team<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> crate::team::TeamMsg,
    ) -> Result<T, BoardGone> {
        let (reply, answer) = oneshot::channel();
        self.send(BoardMsg::Team(make(reply))).await?;
        answer.await.map_err(|_| BoardGone)
    }

    /// Hands an alert webhook's events to the board: see [`BoardMsg::Alerts`].
    pub async fn alert(
        &self,
        token: String,
        events: Vec<hindsight_shared::timeline::Event>,
    ) -> Result<Result<usize, AlertError>, BoardGone> {
        let (reply, answer) = oneshot::channel();
        self.send(BoardMsg::Alerts { token, events, reply }).await?;
        answer.await.map_err(|_| BoardGone)
    }

    /// The board as it stands, or `None` if there is no such board.
    pub async fn snapshot(&self) -> Result<Option<hindsight_shared::schema::Board>, BoardGone> {
        let (reply, answer) = oneshot::channel();
        self.send(BoardMsg::Snapshot { reply }).await?;
        answer.await.map_err(|_| BoardGone)
    }

    /// True if `other` is a clone of this handle.
    pub fn same(&self, other: &BoardHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// How many clones of this handle exist (the registry's included).
    pub(crate) fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

/// The most bytes waiting to be written to one connection. One frame larger than this is still
/// taken when nothing waits (a large board's first sync message), so a peer that reads gets it.
pub const MAX_OUTBOX_BYTES: usize = 8 * 1024 * 1024;
/// The most frames waiting to be written to one connection.
pub const MAX_OUTBOX_FRAMES: usize = 256;

/// What a queued frame is, so that closing can keep what must still be said (an `error`) and
/// drop what would make a client answer a closing socket (a `sync` message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Sync,
    Error,
    Other,
}

/// A frame waiting for the socket.
#[derive(Debug, Clone)]
pub struct Frame {
    pub bytes: Bytes,
    pub kind: FrameKind,
}

/// How a board reaches one peer's connection: a queue of encoded frames bounded in frames and in
/// bytes, and a way to close the connection.
#[derive(Debug, Clone)]
pub struct PeerLink(Arc<LinkInner>);

#[derive(Debug)]
struct LinkInner {
    conn: ConnId,
    peer: PeerId,
    outbox: mpsc::Sender<Frame>,
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    closing: CancellationToken,
    close_reason: OnceLock<CloseReason>,
}

/// The outcome of handing a frame to a peer's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// The peer is gone or was just disconnected for not reading; forget it.
    Dropped,
}

impl PeerLink {
    pub fn new(conn: ConnId, peer: PeerId, outbox: mpsc::Sender<Frame>, closing: CancellationToken) -> Self {
        Self(Arc::new(LinkInner {
            conn,
            peer,
            outbox,
            queued: AtomicUsize::new(0),
            closing,
            close_reason: OnceLock::new(),
        }))
    }

    pub fn conn(&self) -> ConnId {
        self.0.conn
    }

    pub fn peer(&self) -> &PeerId {
        &self.0.peer
    }

    /// Queues a frame without waiting. A peer whose queue is full (in frames or bytes) is not
    /// keeping up: it is disconnected rather than allowed to grow the server's memory.
    pub fn deliver(&self, bytes: Bytes, kind: FrameKind) -> Delivery {
        let len = bytes.len();
        let queued = self.0.queued.load(Ordering::Acquire);
        if queued > 0 && queued + len > MAX_OUTBOX_BYTES {
            self.close(CloseReason::OUTBOX_BYTES);
            return Delivery::Dropped;
        }
        match self.0.outbox.try_send(Frame { bytes, kind }) {
            Ok(()) => {
                self.0.queued.fetch_add(len, Ordering::AcqRel);
                Delivery::Queued
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::OUTBOX_FRAMES);
                Delivery::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Dropped,
        }
    }

    /// Queues an `error` message for the peer and closes the connection with `reason`.
    pub fn refuse(&self, message: String, reason: CloseReason) {
        let frame = hindsight_shared::protocol::WireMessage::Error { message }.encode();
        // The error goes out even past the byte bound: the writer drops what else is queued.
        let _ = self.0.outbox.try_send(Frame { bytes: frame.into(), kind: FrameKind::Error });
        self.close(reason);
    }

    /// The writer wrote (or dropped) a frame of `len` bytes.
    pub fn written(&self, len: usize) {
        self.0.queued.fetch_sub(len, Ordering::AcqRel);
    }

    /// Asks the connection to close with `reason`. The first reason given wins.
    pub fn close(&self, reason: CloseReason) {
        let _ = self.0.close_reason.set(reason);
        self.0.closing.cancel();
    }

    /// The reason the connection is closing, once [`close`](Self::close) was called.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.0.close_reason.get().copied()
    }

    pub fn closing(&self) -> &CancellationToken {
        &self.0.closing
    }
}
