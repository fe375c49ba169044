//! [`WsClient`]: one raw WebSocket connection to the server's `/ws`, speaking the automerge-repo
//! protocol message by message, and able to send frames no well-behaved client would.
//!
//! Like a browser, the client reads its socket all the time (a task queues what arrives), so it
//! answers pings and close frames at once even while a test is busy elsewhere.

use std::time::Instant;

use anyhow::{Context, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::within;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One protocol connection. It keeps every binary frame the server sent, byte for byte, so tests
/// can check what a client was (and was not) told. Dropping it drops the connection.
pub struct WsClient {
    sink: SplitSink<Socket, Message>,
    /// What the reader task saw, in order.
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    reader: JoinHandle<()>,
    received: Vec<Vec<u8>>,
    /// When each of `received` arrived.
    received_at: Vec<Instant>,
}

/// One thing the reader task saw on the socket.
enum Arrival {
    Binary(Vec<u8>, Instant),
    Text(String),
    Closed(CloseFrame, Instant),
    /// The connection ended (without a close frame, if none came before); how.
    Ended(String),
    /// The WebSocket failed in a way no server should cause.
    Failed(String),
}

/// What the server said while it closed a connection.
#[derive(Debug, Clone, Default)]
pub struct Closing {
    /// The messages that came before the close, usually one `error`.
    pub messages: Vec<WireMessage>,
    /// The code of the close frame, if the server sent one.
    pub code: Option<u16>,
    pub reason: String,
    /// How the connection ended when no close frame came (`connection reset`, say).
    pub ended: Option<String>,
    /// When the close frame arrived.
    pub closed_at: Option<Instant>,
}

impl Closing {
    /// Checks that the server closed with `code` (a close frame, not a reset) after an `error`
    /// message containing `error`; `case` names the attack in the failure.
    pub fn assert_refused(&self, case: &str, code: u16, error: &str) {
        assert_eq!(self.code, Some(code), "{case}: the close code; the server said {self:?}");
        assert_eq!(self.ended, None, "{case}: {self:?}");
        let said = self.error().unwrap_or_else(|| panic!("{case}: no `error` message before the close: {self:?}"));
        assert!(said.contains(error), "{case}: the error `{said}` does not mention `{error}`");
    }

    /// The text of the first `error` message, if there was one.
    pub fn error(&self) -> Option<&str> {
        self.messages.iter().find_map(|m| match m {
            WireMessage::Error { message } => Some(message.as_str()),
            _ => None,
        })
    }
}

/// One thing the server did on the connection.
enum Event {
    Message(WireMessage),
    /// The server sent a close frame, at that moment.
    Closed(CloseFrame, Instant),
    /// The connection ended without a close frame; how.
    Ended(String),
}

impl WsClient {
    /// Opens a WebSocket to `url` (`ws://127.0.0.1:PORT/ws`). Like a browser, the client turns
    /// Nagle's algorithm off, so each frame leaves at once.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let (socket, _) = within(&format!("a WebSocket to {url}"), async {
            tokio_tungstenite::connect_async_with_config(url, None, true)
                .await
                .with_context(|| format!("could not open a WebSocket to {url}"))
        })
        .await?;
        let (sink, stream) = socket.split();
        let (tx, arrivals) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_all(stream, tx));
        Ok(Self { sink, arrivals, reader, received: Vec::new(), received_at: Vec::new() })
    }

    /// Sends `join` as `peer` and expects the server's `peer` answer; returns the server's id.
    pub async fn join(&mut self, peer: &PeerId) -> anyhow::Result<PeerId> {
        self.send(&WireMessage::Join {
            sender_id: peer.clone(),
            supported_protocol_versions: vec![PROTOCOL_VERSION.to_owned()],
            metadata: Some(PeerMetadata { storage_id: None, is_ephemeral: true }),
        })
        .await?;
        match self.recv().await.context("no answer to `join`")? {
            WireMessage::Peer { sender_id, target_id, selected_protocol_version, .. } => {
                anyhow::ensure!(&target_id == peer, "the `peer` answer targets `{target_id}`, not us (`{peer}`)");
                anyhow::ensure!(
                    selected_protocol_version == PROTOCOL_VERSION,
                    "the server chose version {selected_protocol_version}"
                );
                Ok(sender_id)
            }
            other => bail!("expected `peer` in answer to `join`, got {other:?}"),
        }
    }

    /// Every binary frame received so far, in order, as the server sent it.
    pub fn received_frames(&self) -> &[Vec<u8>] {
        &self.received
    }

    /// When each frame of [`received_frames`](Self::received_frames) arrived.
    pub fn received_at(&self) -> &[Instant] {
        &self.received_at
    }

    /// Sends one protocol message as a binary frame.
    pub async fn send(&mut self, message: &WireMessage) -> anyhow::Result<()> {
        self.send_frame(Message::Binary(message.encode().into())).await
    }

    /// Sends arbitrary bytes as one binary frame.
    pub async fn send_binary(&mut self, bytes: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        self.send_frame(Message::Binary(bytes.into().into())).await
    }

    /// Sends a text frame, which the protocol does not allow.
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.send_frame(Message::text(text)).await
    }

    async fn send_frame(&mut self, frame: Message) -> anyhow::Result<()> {
        within("a frame to be sent", async { self.sink.send(frame).await.context("could not send a frame") }).await
    }

    /// The next protocol message. A close, or a message that does not decode, is an error.
    pub async fn recv(&mut self) -> anyhow::Result<WireMessage> {
        match self.next_event().await? {
            Event::Message(message) => Ok(message),
            Event::Closed(frame, _) => bail!("the server closed the connection: {} {}", frame.code, frame.reason),
            Event::Ended(how) => bail!("the connection ended without a close frame: {how}"),
        }
    }

    /// Reads until the server closes the connection and returns what it said on the way.
    pub async fn expect_close(&mut self) -> anyhow::Result<Closing> {
        let mut closing = Closing::default();
        loop {
            match self.next_event().await.context("waiting for the server to close the connection")? {
                Event::Message(message) => closing.messages.push(message),
                Event::Closed(frame, at) => {
                    closing.closed_at = Some(at);
                    closing.code = Some(frame.code.into());
                    closing.reason = frame.reason.to_string();
                    // The reader answered the close frame; wait for the socket to end, so the
                    // server's close handshake has completed.
                    let _ = within("the socket to end", self.ended()).await;
                    return Ok(closing);
                }
                Event::Ended(how) => {
                    closing.ended = Some(how);
                    return Ok(closing);
                }
            }
        }
    }

    async fn next_event(&mut self) -> anyhow::Result<Event> {
        within("a message from the server", async {
            match self.arrivals.recv().await {
                Some(Arrival::Binary(bytes, at)) => {
                    let message = WireMessage::decode(&bytes)
                        .with_context(|| format!("the server sent a frame that does not decode: {bytes:02x?}"));
                    self.received.push(bytes);
                    self.received_at.push(at);
                    Ok(Event::Message(message?))
                }
                Some(Arrival::Text(text)) => bail!("the server sent a text frame: {text}"),
                Some(Arrival::Closed(frame, at)) => Ok(Event::Closed(frame, at)),
                Some(Arrival::Ended(how)) => Ok(Event::Ended(how)),
                Some(Arrival::Failed(how)) => bail!("the WebSocket failed: {how}"),
                None => Ok(Event::Ended("the connection was already over".into())),
            }
        })
        .await
    }

    /// Waits until the reader saw the socket end.
    async fn ended(&mut self) -> anyhow::Result<()> {
        while let Some(arrival) = self.arrivals.recv().await {
            if matches!(arrival, Arrival::Ended(_) | Arrival::Failed(_)) {
                break;
            }
        }
        Ok(())
    }

    /// Closes the connection politely.
    pub async fn close(mut self) -> anyhow::Result<()> {
        within("the connection to close", async {
            self.sink.close().await.context("could not close")?;
            self.ended().await
        })
        .await
    }
}

impl Drop for WsClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The reader task: queues everything that arrives until the socket ends. Reading is also what
/// makes tungstenite answer pings and close frames.
async fn read_all(mut stream: SplitStream<Socket>, arrivals: mpsc::UnboundedSender<Arrival>) {
    use tokio_tungstenite::tungstenite::Error;
    while let Some(frame) = stream.next().await {
        let arrival = match frame {
            Ok(Message::Binary(bytes)) => Arrival::Binary(bytes.to_vec(), Instant::now()),
            Ok(Message::Text(text)) => Arrival::Text(text.to_string()),
            Ok(Message::Close(Some(frame))) => Arrival::Closed(frame, Instant::now()),
            Ok(Message::Close(None)) => Arrival::Ended("a close frame without a code".into()),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
            Err(e @ (Error::ConnectionClosed | Error::AlreadyClosed | Error::Io(_) | Error::Protocol(_))) => {
                let _ = arrivals.send(Arrival::Ended(e.to_string()));
                return;
            }
            Err(e) => {
                let _ = arrivals.send(Arrival::Failed(e.to_string()));
                return;
            }
        };
        if arrivals.send(arrival).is_err() {
            return;
        }
    }
    let _ = arrivals.send(Arrival::Ended("the stream ended".into()));
}

/// A connection that has joined, to send frames by hand: the client, our peer id and the
/// server's.
pub struct Joined {
    pub client: WsClient,
    pub me: PeerId,
    pub server: PeerId,
}

impl Joined {
    pub async fn open(ws_url: &str) -> anyhow::Result<Self> {
        let mut client = WsClient::connect(ws_url).await?;
        let me = PeerId::random();
        let server = client.join(&me).await?;
        Ok(Self { client, me, server })
    }

    /// A `request` for `document_id`, as a browser opening a board sends it.
    pub fn request(&self, document_id: DocumentId) -> WireMessage {
        self.with_ids(|sender_id, target_id| WireMessage::Request {
            document_id,
            sender_id,
            target_id,
            data: empty_doc_sync_message(),
        })
    }

    /// A `sync` message from us to the server carrying `data`.
    pub fn sync(&self, document_id: DocumentId, data: Vec<u8>) -> WireMessage {
        self.with_ids(|sender_id, target_id| WireMessage::Sync { document_id, sender_id, target_id, data })
    }

    /// An `ephemeral` message from us carrying `data`.
    pub fn ephemeral(&self, document_id: DocumentId, count: u64, data: Vec<u8>) -> WireMessage {
        self.with_ids(|sender_id, target_id| WireMessage::Ephemeral {
            document_id,
            sender_id,
            target_id,
            session_id: "by-hand".into(),
            count,
            data,
        })
    }

    fn with_ids(&self, make: impl FnOnce(PeerId, PeerId) -> WireMessage) -> WireMessage {
        make(self.me.clone(), self.server.clone())
    }
}

/// The first sync message of an empty document: what `request` carries, and what a peer that
/// lost everything sends. The server answers it with the whole document, every time.
pub fn empty_doc_sync_message() -> Vec<u8> {
    use automerge::sync::SyncDoc;
    let message = automerge::Automerge::new().generate_sync_message(&mut automerge::sync::State::new());
    message.map(automerge::sync::Message::encode).unwrap_or_default()
}

/// A connection that reads only when its test says so: a small receive buffer, so the server's
/// side fills soon, and no reader task (so it answers no ping until it reads). Joined; returns
/// the socket, our peer id and the server's.
pub async fn quiet(ws_url: &str) -> anyhow::Result<(WebSocketStream<TcpStream>, PeerId, PeerId)> {
    let address = ws_url.strip_prefix("ws://").and_then(|rest| rest.split('/').next()).context("a ws:// URL")?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let stream = socket.connect(address.parse()?).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(ws_url, stream).await?;
    let me = PeerId::random();
    let join = WireMessage::Join {
        sender_id: me.clone(),
        supported_protocol_versions: vec![PROTOCOL_VERSION.to_owned()],
        metadata: None,
    };
    ws.send(Message::Binary(join.encode().into())).await?;
    // The server's answer to `join` names it; reading that one frame is all this does.
    let server =
        match within("an answer to join", async { ws.next().await.context("no answer to join")?.map_err(Into::into) })
            .await?
        {
            Message::Binary(bytes) => match WireMessage::decode(&bytes)? {
                WireMessage::Peer { sender_id, .. } => sender_id,
                other => bail!("expected `peer`, got {other:?}"),
            },
            other => bail!("expected `peer`, got {other:?}"),
        };
    Ok((ws, me, server))
}
