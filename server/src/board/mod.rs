//! A board in memory: the handle connections talk to, the link it talks back on, and its actor.
//!
//! - [`core`]: the sans-IO document and peer sync states.
//! - [`actor`]: the one task per board that owns a [`core::BoardCore`], stores accepted changes
//!   and answers peers.
//!
//! A connection sends [`BoardMsg`]s through a [`BoardHandle`]; the board answers through the
//! [`PeerLink`] that came with the message. Neither side ever holds a lock the other needs.

pub mod actor;
pub mod core;
pub mod replica;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hindsight_shared::ids::{DocumentId, PeerId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use self::core::{ConnId, DocMessage, Participant};

/// What a connection (or the HTTP API) tells a board.
#[derive(Debug)]
pub enum BoardMsg {
    /// A message from the peer behind `link` about `doc`: the board or one of its desks.
    FromPeer { link: PeerLink, doc: DocumentId, message: DocMessage },
    /// The connection closed: forget its peer.
    Left { conn: ConnId },
    /// The board as it stands (everything in it is stored), or `None` if there is no such board.
    Snapshot { reply: tokio::sync::oneshot::Sender<Option<hindsight_shared::schema::Board>> },
    /// Someone joined; their desk (a saved document) is already stored. Answered once the
    /// board knows them, and once any change their joining made is stored.
    Joined {
        participant: Participant,
        desk: Vec<u8>,
        facilitator: bool,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
}

/// The board's task has stopped; ask the registry for a fresh handle.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the board has stopped")]
pub struct BoardGone;

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

    /// How many clones of this handle exist (the registry's included).
    pub(crate) fn holders(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}

/// How a board reaches one peer's connection: a bounded queue of encoded frames and a way to
/// close the connection.
#[derive(Debug, Clone)]
pub struct PeerLink(Arc<LinkInner>);

#[derive(Debug)]
struct LinkInner {
    conn: ConnId,
    peer: PeerId,
    outbox: mpsc::Sender<Bytes>,
    closing: CancellationToken,
    close_reason: OnceLock<CloseReason>,
}

/// Why and how a connection is closed: a WebSocket close code and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseReason {
    pub const NORMAL: Self = Self { code: 1000, reason: "bye" };
    pub const GOING_AWAY: Self = Self { code: 1001, reason: "the server is shutting down" };
    pub const PROTOCOL: Self = Self { code: 1002, reason: "protocol error" };
    pub const UNSUPPORTED: Self = Self { code: 1003, reason: "Hindsight speaks binary frames" };
    pub const POLICY: Self = Self { code: 1008, reason: "too slow: messages piled up unread" };
    pub const TOO_BIG: Self = Self { code: 1009, reason: "message too big" };
    pub const INTERNAL: Self = Self { code: 1011, reason: "the board could not be stored" };
}

/// The outcome of handing a frame to a peer's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// The peer is gone or was just disconnected for not reading; forget it.
    Dropped,
}

impl PeerLink {
    pub fn new(conn: ConnId, peer: PeerId, outbox: mpsc::Sender<Bytes>, closing: CancellationToken) -> Self {
        Self(Arc::new(LinkInner { conn, peer, outbox, closing, close_reason: OnceLock::new() }))
    }

    pub fn conn(&self) -> ConnId {
        self.0.conn
    }

    pub fn peer(&self) -> &PeerId {
        &self.0.peer
    }

    /// Queues a frame without waiting. A peer whose queue is full is not keeping up: it is
    /// disconnected rather than allowed to grow the server's memory.
    pub fn deliver(&self, frame: Bytes) -> Delivery {
        match self.0.outbox.try_send(frame) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseReason::POLICY);
                Delivery::Dropped
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Dropped,
        }
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
