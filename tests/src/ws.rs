//! [`WsClient`]: one raw WebSocket connection to the server's `/ws`, speaking the automerge-repo
//! protocol message by message, and able to send frames no well-behaved client would.

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use hindsight_shared::ids::PeerId;
use hindsight_shared::protocol::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::within;

/// One protocol connection. It keeps every binary frame the server sent, byte for byte, so tests
/// can check what a client was (and was not) told.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    received: Vec<Vec<u8>>,
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
}

impl Closing {
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
    /// The server sent a close frame.
    Closed(CloseFrame),
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
        Ok(Self { socket, received: Vec::new() })
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
        within("a frame to be sent", async { self.socket.send(frame).await.context("could not send a frame") }).await
    }

    /// The next protocol message. A close, or a message that does not decode, is an error.
    pub async fn recv(&mut self) -> anyhow::Result<WireMessage> {
        match self.next_event().await? {
            Event::Message(message) => Ok(message),
            Event::Closed(frame) => bail!("the server closed the connection: {} {}", frame.code, frame.reason),
            Event::Ended(how) => bail!("the connection ended without a close frame: {how}"),
        }
    }

    /// Reads until the server closes the connection and returns what it said on the way.
    pub async fn expect_close(&mut self) -> anyhow::Result<Closing> {
        let mut closing = Closing::default();
        loop {
            match self.next_event().await.context("waiting for the server to close the connection")? {
                Event::Message(message) => closing.messages.push(message),
                Event::Closed(frame) => {
                    closing.code = Some(frame.code.into());
                    closing.reason = frame.reason.to_string();
                    // Let tungstenite answer the close frame and see the socket end, so the
                    // server's close handshake completes.
                    let _ = within("the socket to end", async {
                        while let Some(Ok(_)) = self.socket.next().await {}
                        Ok(())
                    })
                    .await;
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
            loop {
                let frame = match self.socket.next().await {
                    None => return Ok(Event::Ended("the stream ended".into())),
                    Some(Err(e)) => {
                        use tokio_tungstenite::tungstenite::Error;
                        return match e {
                            Error::ConnectionClosed | Error::AlreadyClosed | Error::Io(_) | Error::Protocol(_) => {
                                Ok(Event::Ended(e.to_string()))
                            }
                            other => Err(other).context("the WebSocket failed"),
                        };
                    }
                    Some(Ok(frame)) => frame,
                };
                match frame {
                    Message::Binary(bytes) => {
                        self.received.push(bytes.to_vec());
                        let message = WireMessage::decode(&bytes)
                            .with_context(|| format!("the server sent a frame that does not decode: {bytes:02x?}"))?;
                        return Ok(Event::Message(message));
                    }
                    Message::Close(Some(frame)) => return Ok(Event::Closed(frame)),
                    Message::Close(None) => {
                        return Ok(Event::Ended("a close frame without a code".into()));
                    }
                    Message::Text(text) => bail!("the server sent a text frame: {text}"),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                }
            }
        })
        .await
    }

    /// Closes the connection politely.
    pub async fn close(mut self) -> anyhow::Result<()> {
        within("the connection to close", async {
            self.socket.close(None).await.context("could not close")?;
            while let Some(Ok(_)) = self.socket.next().await {}
            Ok(())
        })
        .await
    }
}
