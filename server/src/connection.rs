//! One WebSocket connection: the automerge-repo handshake, then routing each document message to
//! its board, and a writer task that drains the connection's bounded outbox.
//!
//! Bad input never takes the server down: a frame that is not a protocol message gets an `error`
//! message and a close frame, and only this connection ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::board::{BoardHandle, BoardMsg, CloseReason, ConnId, DocMessage, PeerLink};
use crate::registry::Registry;

/// Frames waiting to be written to one socket. A peer that lets this fill up is disconnected.
const OUTBOX_CAPACITY: usize = 256;
/// How long a client has to send `join`.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The server pings this often; a connection silent for three intervals is dropped.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// The longest one write to the socket may take before the peer counts as gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
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
    pub shutdown: CancellationToken,
}

/// A token bucket: `rate` tokens a second, up to twice that in store.
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl RateLimit {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self { rate, tokens: rate * 2.0, last: tokio::time::Instant::now() }
    }

    /// Takes a token; false when the bucket is empty.
    fn take(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate * 2.0);
        self.last = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
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
    let (outbox, outbox_rx) = mpsc::channel::<Bytes>(OUTBOX_CAPACITY);
    let closing = ctx.shutdown.child_token();

    let joined = tokio::select! {
        joined = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&mut stream)) => {
            joined.unwrap_or(Err(End::Close(CloseReason { code: 1008, reason: "no join message" })))
        }
        () = closing.cancelled() => Err(End::Close(CloseReason::GOING_AWAY)),
    };
    let peer = match joined {
        Ok(peer) => peer,
        Err(end) => {
            let link = PeerLink::new(conn, PeerId::from("unjoined"), outbox, closing);
            finish(&link, end);
            write_loop(sink, outbox_rx, link).await;
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
    link.deliver(answer.encode().into());
    let writer = tokio::spawn(write_loop(sink, outbox_rx, link.clone()));
    tracing::debug!(conn, %peer, "peer joined");

    let mut reader = Reader {
        conn,
        link: link.clone(),
        ctx: &ctx,
        boards: HashMap::new(),
        rate: RateLimit::new(ctx.max_messages_per_second),
    };
    let end = reader.run(&mut stream).await;
    // A board may be listed under its own id and its desks' ids: tell each board once.
    let mut told = std::collections::HashSet::new();
    for board in reader.boards.values() {
        if told.insert(board.id()) {
            let _ = board.send(BoardMsg::Left { conn }).await;
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
            tracing::info!(conn = link.conn(), peer = %link.peer(), %message, "closing connection after bad input");
            link.deliver(WireMessage::Error { message }.encode().into());
            link.close(reason);
        }
    }
}

/// Waits for `join` and checks its protocol version.
async fn handshake(stream: &mut futures_util::stream::SplitStream<WebSocket>) -> Result<PeerId, End> {
    loop {
        let frame = match stream.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(socket_error(&e)),
            None => return Err(End::Close(CloseReason::NORMAL)),
        };
        match parse(frame)? {
            Some(WireMessage::Join { sender_id, supported_protocol_versions, .. }) => {
                if !supported_protocol_versions.iter().any(|v| v == PROTOCOL_VERSION) {
                    return Err(End::Error("unsupported protocol version".into(), CloseReason::PROTOCOL));
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

fn socket_error(e: &axum::Error) -> End {
    let text = e.to_string();
    // tungstenite reports an oversized message as a capacity error.
    if text.contains("Space limit exceeded") || text.contains("too long") || text.contains("too big") {
        End::Error("message too big".into(), CloseReason::TOO_BIG)
    } else {
        tracing::debug!(error = %text, "socket error");
        End::Close(CloseReason::PROTOCOL)
    }
}

struct Reader<'a> {
    conn: ConnId,
    link: PeerLink,
    ctx: &'a ConnectionContext,
    boards: HashMap<DocumentId, BoardHandle>,
    rate: RateLimit,
}

impl Reader<'_> {
    async fn run(&mut self, stream: &mut futures_util::stream::SplitStream<WebSocket>) -> End {
        let closing = self.link.closing().clone();
        loop {
            let frame = tokio::select! {
                () = closing.cancelled() => {
                    return End::Close(self.link.close_reason().unwrap_or(CloseReason::GOING_AWAY));
                }
                frame = tokio::time::timeout(PING_INTERVAL * 3, stream.next()) => frame,
            };
            let frame = match frame {
                Err(_) => return End::Close(CloseReason { code: 1001, reason: "idle" }),
                Ok(None) => return End::Close(CloseReason::NORMAL),
                Ok(Some(Err(e))) => return socket_error(&e),
                Ok(Some(Ok(frame))) => frame,
            };
            let message = match parse(frame) {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(end) => return end,
            };
            if !self.rate.take() {
                return End::Error(
                    format!("too many messages: at most {} a second", self.ctx.max_messages_per_second),
                    CloseReason::POLICY,
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
            WireMessage::Ephemeral { document_id, sender_id, target_id, session_id, count, data } => {
                (document_id, sender_id, target_id, DocMessage::Ephemeral { session_id, count, data })
            }
            WireMessage::Leave { .. } => return Err(End::Close(CloseReason::NORMAL)),
            WireMessage::Error { message } => {
                tracing::info!(conn = self.conn, peer = %self.link.peer(), %message, "peer reported an error");
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
                CloseReason::POLICY,
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
    mut outbox: mpsc::Receiver<Bytes>,
    link: PeerLink,
) {
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        let message = tokio::select! {
            biased;
            frame = outbox.recv() => match frame {
                Some(frame) => Message::Binary(frame),
                None => break,
            },
            () = link.closing().cancelled() => break,
            _ = ping.tick() => Message::Ping(Bytes::new()),
        };
        match tokio::time::timeout(WRITE_TIMEOUT, sink.send(message)).await {
            Ok(Ok(())) => {}
            _ => {
                link.close(CloseReason::POLICY);
                return;
            }
        }
    }
    // Flush what the board queued before the close (an `error` message, say), then say goodbye.
    while let Ok(frame) = outbox.try_recv() {
        if tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Binary(frame))).await.is_err() {
            return;
        }
    }
    // A link closed without a reason was closed by the server's shutdown.
    let reason = link.close_reason().unwrap_or(CloseReason::GOING_AWAY);
    let close = Message::Close(Some(CloseFrame { code: reason.code, reason: reason.reason.into() }));
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(close)).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
}
