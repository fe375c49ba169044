//! One WebSocket connection: the automerge-repo handshake, then routing each document message to
//! its board, and a writer task that drains the connection's bounded outbox.
//!
//! Bad input never takes the server down: a frame that is not a protocol message gets an `error`
//! message and a close frame, and only this connection ends. What a connection may send is bounded
//! in messages and in bytes per second; what it may make a board do is bounded by the board
//! ([`crate::board::actor`]).
//!
//! Invariants: a connection stores nothing (what it receives is stored by its board before anyone
//! hears of it; tidy: connection-stores-nothing); no client speaks as the server (its own peer id is refused at
//! `join`, and ephemeral messages go on only under their sender's id).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::board::core::DocMessage;
use crate::board::replica::ConnId;
use crate::board::{BoardHandle, BoardMsg, Frame, FrameKind, MAX_OUTBOX_FRAMES, PeerLink};
use crate::budget::TokenBucket;
use crate::closing::CloseReason;
use crate::registry::Registry;

/// How long a client has to send `join`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that sent nothing for this many ping intervals in a row is dropped. Counted in
/// ticks, not in elapsed time, so a server process that was stopped (SIGSTOP) does not find
/// every connection idle when it resumes: the frames that arrived meanwhile are read before the
/// next tick counts.
const IDLE_TICKS: u32 = 3;
/// The longest one write to the socket may take before the peer counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the close frame may wait for the socket: a client that stopped reading is given
/// time to read what was queued before it.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a close frame waits after a `sync` message. A stock automerge-repo client answers a
/// sync message at once, and fails for good if the socket closed in between (see ARCHITECTURE.md,
/// "Closing").
pub const QUIET_BEFORE_CLOSE: Duration = Duration::from_millis(500);
/// How long to wait for the client's close frame after sending ours.
const LINGER: Duration = Duration::from_secs(2);
/// How many documents one connection may have open at once.
const MAX_DOCS_PER_CONNECTION: usize = 16;

/// What a connection needs from the server.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    pub registry: Arc<Registry>,
    /// The server's peer id.
    pub server: PeerId,
    /// Sustained messages per second one connection may send.
    pub max_messages_per_second: u32,
    /// Sustained bytes per second one connection may send (bursts up to a message's size more).
    pub max_bytes_per_second: u64,
    /// The largest message a client may send.
    pub max_message_bytes: usize,
    /// How often the server pings.
    pub ping_interval: Duration,
    pub shutdown: CancellationToken,
}

/// Why the reader stopped.
enum End {
    Close(CloseReason),
    /// Send this `error` message, then close.
    Error(String, CloseReason),
}

/// Serves one upgraded WebSocket until either side closes it.
pub async fn serve(socket: WebSocket, conn: ConnId, ctx: ConnectionContext) {
    let (sink, mut stream) = socket.split();
    let (outbox, outbox_rx) = mpsc::channel::<Frame>(MAX_OUTBOX_FRAMES);
    let closing = ctx.shutdown.child_token();

    let joined = tokio::select! {
        joined = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream, &ctx.server)) => {
            joined.unwrap_or(Err(End::Close(CloseReason::NO_JOIN)))
        }
        () = closing.cancelled() => Err(End::Close(CloseReason::GOING_AWAY)),
    };
    let peer = match joined {
        Ok(peer) => peer,
        Err(end) => {
            let link = PeerLink::new(conn, PeerId::from("unjoined"), outbox, closing);
            finish(&link, end);
            write_loop(sink, outbox_rx, link, ctx.ping_interval).await;
            linger(&mut stream).await;
            return;
        }
    };
    let link = PeerLink::new(conn, peer.clone(), outbox, closing);
    let answer = WireMessage::Peer {
        sender_id: ctx.server.clone(),
        target_id: peer.clone(),
        selected_protocol_version: PROTOCOL_VERSION.to_owned(),
        metadata: Some(PeerMetadata { storage_id: None, is_ephemeral: false }),
    };
    link.deliver(answer.encode().into(), FrameKind::Other);
    let writer = tokio::spawn(write_loop(sink, outbox_rx, link.clone(), ctx.ping_interval));
    tracing::debug!(conn, %peer, "peer joined");

    let now = Instant::now();
    let mut reader = Reader {
        conn,
        link: link.clone(),
        ctx: &ctx,
        boards: HashMap::new(),
        messages: TokenBucket::new(
            f64::from(ctx.max_messages_per_second),
            2.0 * f64::from(ctx.max_messages_per_second),
            now,
        ),
        bytes: TokenBucket::new(
            ctx.max_bytes_per_second as f64,
            ctx.max_bytes_per_second as f64 + ctx.max_message_bytes as f64,
            now,
        ),
    };
    let end = reader.run(&mut stream).await;
    // A board may be listed under its own id and its desks' ids: tell each board once. A board
    // that moved meanwhile (cluster mode: its connections were resumed on the next owner) is told
    // where it is now.
    let mut told = std::collections::HashSet::new();
    for (doc, board) in &reader.boards {
        if told.insert(board.id()) && board.send(BoardMsg::Left { conn }).await.is_err() {
            tracing::debug!(conn, "the board moved: telling its next owner the connection left");
            let _ = ctx.registry.resolve(*doc).await.send(BoardMsg::Left { conn }).await;
        }
    }
    finish(&link, end);
    let _ = writer.await;
    linger(&mut stream).await;
    tracing::debug!(conn, %peer, "peer left");
}

/// After our close frame, reads until the client's own close frame (or a short timeout) before
/// the socket is dropped: dropping it with unread input would make the kernel reset the
/// connection, and a reset can destroy the close frame before the client reads it.
async fn linger(stream: &mut futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(LINGER, async {
        while let Some(Ok(frame)) = stream.next().await {
            if matches!(frame, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Queues the last words and closes the link.
fn finish(link: &PeerLink, end: End) {
    match end {
        End::Close(reason) => link.close(reason),
        End::Error(message, reason) => {
            tracing::debug!(conn = link.conn(), peer = %link.peer(), error = ?message, "closing connection after bad input");
            link.refuse(message, reason);
        }
    }
}

/// Waits for `join`, checks its protocol version and the peer id it announces.
async fn handshake(stream: &mut futures_util::stream::SplitStream<WebSocket>, server: &PeerId) -> Result<PeerId, End> {
    loop {
        let frame = match stream.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(socket_error(e)),
            None => return Err(End::Close(CloseReason::NORMAL)),
        };
        match parse(frame)? {
            Some(WireMessage::Join { sender_id, supported_protocol_versions, .. }) => {
                if !supported_protocol_versions.iter().any(|v| v == PROTOCOL_VERSION) {
                    return Err(End::Error("unsupported protocol version".into(), CloseReason::PROTOCOL));
                }
                if !sender_id.is_well_formed() {
                    return Err(End::Error(
                        "a peer id is 1 to 100 printable ASCII characters without spaces".into(),
                        CloseReason::PROTOCOL,
                    ));
                }
                if sender_id == *server {
                    return Err(End::Error("that peer id is the server's".into(), CloseReason::PROTOCOL));
                }
                return Ok(sender_id);
            }
            Some(other) => {
                return Err(End::Error(
                    format!("the first message must be `join`, not `{}`", other.kind()),
                    CloseReason::PROTOCOL,
                ));
            }
            None => continue,
        }
    }
}

/// Decodes a frame. `Ok(None)` for control frames that carry no message.
fn parse(frame: Message) -> Result<Option<WireMessage>, End> {
    match frame {
        Message::Binary(bytes) => WireMessage::decode(&bytes)
            .map(Some)
            .map_err(|e| End::Error(format!("malformed message: {e}"), CloseReason::PROTOCOL)),
        Message::Text(_) => Err(End::Error("messages must be binary CBOR frames".into(), CloseReason::UNSUPPORTED)),
        Message::Ping(_) | Message::Pong(_) => Ok(None),
        Message::Close(_) => Err(End::Close(CloseReason::NORMAL)),
    }
}

fn socket_error(e: axum::Error) -> End {
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error};
    // axum wraps tungstenite's error; an oversized message is a capacity error.
    match e.into_inner().downcast::<Error>() {
        Ok(error) if matches!(*error, Error::Capacity(CapacityError::MessageTooLong { .. })) => {
            End::Error("message too big".into(), CloseReason::TOO_BIG)
        }
        Ok(error) => {
            tracing::debug!(error = %error, "socket error");
            End::Close(CloseReason::PROTOCOL)
        }
        Err(error) => {
            tracing::debug!(error = %error, "socket error");
            End::Close(CloseReason::PROTOCOL)
        }
    }
}

struct Reader<'a> {
    conn: ConnId,
    link: PeerLink,
    ctx: &'a ConnectionContext,
    boards: HashMap<DocumentId, BoardHandle>,
    messages: TokenBucket,
    bytes: TokenBucket,
}

impl Reader<'_> {
    async fn run(&mut self, stream: &mut futures_util::stream::SplitStream<WebSocket>) -> End {
        let closing = self.link.closing().clone();
        let every = self.ctx.ping_interval;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut quiet_ticks = 0;
        loop {
            let frame = tokio::select! {
                biased;
                () = closing.cancelled() => {
                    return End::Close(self.link.close_reason().unwrap_or(CloseReason::GOING_AWAY));
                }
                // Frames first: after a pause of the whole process, what arrived meanwhile is
                // read before the idle tick counts.
                frame = stream.next() => frame,
                _ = ticks.tick() => {
                    quiet_ticks += 1;
                    if quiet_ticks >= IDLE_TICKS {
                        return End::Close(CloseReason::IDLE);
                    }
                    continue;
                }
            };
            quiet_ticks = 0;
            let frame = match frame {
                None => return End::Close(CloseReason::NORMAL),
                Some(Err(e)) => return socket_error(e),
                Some(Ok(frame)) => frame,
            };
            let now = Instant::now();
            let size = match &frame {
                Message::Binary(bytes) => bytes.len(),
                Message::Text(text) => text.len(),
                _ => 0,
            };
            if !self.bytes.take(size as f64, now) {
                return End::Error(
                    format!("too many bytes: at most {} a second", self.ctx.max_bytes_per_second),
                    CloseReason::TOO_MANY_BYTES,
                );
            }
            let message = match parse(frame) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(end) => return end,
            };
            if !self.messages.take(1.0, now) {
                return End::Error(
                    format!("too many messages: at most {} a second", self.ctx.max_messages_per_second),
                    CloseReason::TOO_MANY_MESSAGES,
                );
            }
            if let Err(end) = self.route(message).await {
                return end;
            }
        }
    }

    /// Sends one message to its board.
    async fn route(&mut self, message: WireMessage) -> Result<(), End> {
        let (document_id, sender, target, message) = match message {
            WireMessage::Request { document_id, sender_id, target_id, data } => {
                (document_id, sender_id, target_id, DocMessage::Request(data))
            }
            WireMessage::Sync { document_id, sender_id, target_id, data } => {
                (document_id, sender_id, target_id, DocMessage::Sync(data))
            }
            // A stock automerge-repo client passes on the ephemeral messages it receives, with
            // their first sender's id (its gossip). The board already relayed those: drop them.
            WireMessage::Ephemeral { ref sender_id, .. } if sender_id != self.link.peer() => return Ok(()),
            WireMessage::Ephemeral { document_id, sender_id, target_id, session_id, count, data } => {
                (document_id, sender_id, target_id, DocMessage::Ephemeral { session_id, count, data })
            }
            WireMessage::Leave { .. } => return Err(End::Close(CloseReason::NORMAL)),
            WireMessage::Error { message } => {
                tracing::debug!(conn = self.conn, peer = %self.link.peer(), error = ?message, "peer reported an error");
                return Err(End::Close(CloseReason::NORMAL));
            }
            WireMessage::Join { .. } | WireMessage::Peer { .. } => {
                return Err(End::Error("this connection has already joined".into(), CloseReason::PROTOCOL));
            }
            // Nothing to do: we hold no other peers' heads, and a client may lack a document.
            WireMessage::DocUnavailable { .. }
            | WireMessage::RemoteSubscriptionChange { .. }
            | WireMessage::RemoteHeadsChanged { .. } => return Ok(()),
        };
        if &sender != self.link.peer() {
            return Err(End::Error(format!("senderId must be `{}`", self.link.peer()), CloseReason::PROTOCOL));
        }
        if target != self.ctx.server {
            return Err(End::Error(format!("targetId must be `{}`", self.ctx.server), CloseReason::PROTOCOL));
        }
        if !self.boards.contains_key(&document_id) && self.boards.len() >= MAX_DOCS_PER_CONNECTION {
            return Err(End::Error(
                format!("a connection may open at most {MAX_DOCS_PER_CONNECTION} documents"),
                CloseReason::TOO_MANY_DOCUMENTS,
            ));
        }
        // A board that stopped (evicted after a storage failure) is asked for afresh, once.
        for _ in 0..2 {
            let board = match self.boards.get(&document_id) {
                Some(board) => board.clone(),
                None => {
                    let board = self.ctx.registry.resolve(document_id).await;
                    self.boards.insert(document_id, board.clone());
                    board
                }
            };
            let sent = board
                .send(BoardMsg::FromPeer { link: self.link.clone(), doc: document_id, message: message.clone() })
                .await;
            if sent.is_ok() {
                return Ok(());
            }
            self.boards.remove(&document_id);
        }
        Err(End::Close(CloseReason::INTERNAL))
    }
}

/// Writes queued frames to the socket, pings, and sends the close frame once the link closes.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<Frame>,
    link: PeerLink,
    every: Duration,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sync: Option<tokio::time::Instant> = None;
    loop {
        let (message, len) = tokio::select! {
            biased;
            () = link.closing().cancelled() => break,
            frame = outbox.recv() => match frame {
                Some(frame) => {
                    if frame.kind == FrameKind::Sync {
                        last_sync = Some(tokio::time::Instant::now());
                    }
                    let len = frame.bytes.len();
                    (Message::Binary(frame.bytes), len)
                }
                None => break,
            },
            _ = ping.tick() => (Message::Ping(Default::default()), 0),
        };
        // A write that waits on a peer who does not read ends when the link closes: the frame
        // stays in the socket's buffer, ahead of the close frame below.
        let written = tokio::select! {
            written = tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)) => written,
            () = link.closing().cancelled() => {
                link.written(len);
                break;
            }
        };
        link.written(len);
        match written {
            Ok(Ok(())) => {}
            // The peer stopped reading: it is told why, if it ever reads again.
            Err(_) => {
                link.close(CloseReason::WRITE_STALLED);
                break;
            }
            // The socket is gone.
            Ok(Err(_)) => {
                link.close(CloseReason::LOST);
                return;
            }
        }
    }
    // Say what must be said (an `error`), drop the rest: a sync message right before the close
    // would make a stock client answer a closing socket.
    while let Ok(frame) = outbox.try_recv() {
        link.written(frame.bytes.len());
        if frame.kind == FrameKind::Error
            && tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Binary(frame.bytes))).await.is_err()
        {
            return;
        }
    }
    if let Some(at) = last_sync {
        tokio::time::sleep_until(at + QUIET_BEFORE_CLOSE).await;
    }
    // A link closed without a reason was closed by the server's shutdown. A lost socket takes
    // no close frame (and 1006 may never be sent).
    let reason = link.close_reason().unwrap_or(CloseReason::GOING_AWAY);
    if reason == CloseReason::LOST {
        return;
    }
    let close = Message::Close(Some(CloseFrame { code: reason.code, reason: reason.reason.into() }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close)).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
}
