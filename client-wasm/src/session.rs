//! The live link to one board: the local Automerge copy, the WebSocket with automatic reconnect,
//! and the automerge-repo sync protocol between them.
//!
//! The local copy is the source of truth for the UI. Edits apply to it at once, whether or not
//! the server is reachable; the sync protocol sends them whenever a connection is up, so edits
//! made offline merge when the network returns. Each new connection starts a fresh sync state,
//! and the first exchange tells both sides what the other lacks.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use automerge::Automerge;
use automerge::sync::{self, SyncDoc};
use automerge::transaction::Transaction;
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::protocol::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use hindsight_shared::schema::{Board, SchemaError};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

/// The state of the connection, as the connection indicator shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The first connection attempt is under way.
    Connecting,
    Connected,
    /// The connection dropped; trying again.
    Reconnecting,
    /// The browser reports no network; edits stay local until it returns.
    Offline,
}

impl Status {
    /// The value of the indicator's `data-state` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Offline => "offline",
        }
    }
}

/// What the UI reads. Copyable signals, updated by the session.
#[derive(Debug, Clone, Copy)]
pub struct BoardView {
    pub board: RwSignal<Option<Board>>,
    pub status: RwSignal<Status>,
    /// The server does not know this board.
    pub unavailable: RwSignal<bool>,
    /// Local edits the server has not acknowledged yet.
    pub unsynced: RwSignal<bool>,
}

/// A handle to the session of one board. Cheap to clone.
#[derive(Clone)]
pub struct BoardSession {
    inner: Rc<RefCell<Inner>>,
    pub view: BoardView,
}

struct Inner {
    board_id: DocumentId,
    peer_id: PeerId,
    doc: Automerge,
    sync: sync::State,
    socket: Option<Socket>,
    /// The server's peer id, once the handshake on the current socket completed.
    server: Option<PeerId>,
    /// Failed attempts since the last successful handshake, for backoff.
    attempts: u32,
    /// Bumped on every new socket, so callbacks of an old socket do nothing.
    generation: u64,
}

/// A WebSocket and the callbacks that must live as long as it.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

impl BoardSession {
    /// Starts syncing a board: connects now and keeps reconnecting for the life of the page.
    pub fn start(board_id: DocumentId) -> Self {
        let view = BoardView {
            board: RwSignal::new(None),
            status: RwSignal::new(Status::Connecting),
            unavailable: RwSignal::new(false),
            unsynced: RwSignal::new(false),
        };
        let inner = Inner {
            board_id,
            peer_id: PeerId::from(format!("browser-{}", PeerId::random())),
            doc: Automerge::new(),
            sync: sync::State::new(),
            socket: None,
            server: None,
            attempts: 0,
            generation: 0,
        };
        let session = Self { inner: Rc::new(RefCell::new(inner)), view };
        session.connect();
        // Come back at once when the browser regains the network.
        let online = session.clone();
        let _ = window_event_listener(leptos::ev::online, move |_| {
            if online.inner.borrow().server.is_none() {
                online.connect();
            }
        });
        let offline = session.clone();
        let _ = window_event_listener(leptos::ev::offline, move |_| {
            if offline.inner.borrow().server.is_none() {
                offline.view.status.set(Status::Offline);
            }
        });
        session
    }

    /// Makes a local edit: applies it now, shows it, and sends it if connected.
    pub fn change(
        &self,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>,
    ) -> Result<(), SchemaError> {
        {
            let mut inner = self.inner.borrow_mut();
            let mut tx = inner.doc.transaction();
            match edit(&mut tx) {
                Ok(()) => {
                    tx.commit();
                }
                Err(e) => {
                    tx.rollback();
                    return Err(e);
                }
            }
        }
        self.refresh();
        self.push();
        Ok(())
    }

    fn ws_url() -> String {
        let location = window().location();
        let scheme = if location.protocol().ok().as_deref() == Some("https:") { "wss" } else { "ws" };
        let host = location.host().unwrap_or_default();
        format!("{scheme}://{host}/ws")
    }

    /// Opens a new socket, replacing any old one.
    fn connect(&self) {
        let generation = {
            let mut inner = self.inner.borrow_mut();
            inner.generation += 1;
            inner.socket = None;
            inner.server = None;
            inner.generation
        };
        let ws = match WebSocket::new(&Self::ws_url()) {
            Ok(ws) => ws,
            Err(_) => {
                self.schedule_reconnect(generation);
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);

        let session = self.clone();
        let on_open = Closure::<dyn FnMut()>::new(move || session.on_open(generation));
        let session = self.clone();
        let on_message =
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| session.on_message(generation, event));
        let session = self.clone();
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| session.on_close(generation));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        self.inner.borrow_mut().socket =
            Some(Socket { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close });
    }

    fn current(&self, generation: u64) -> bool {
        self.inner.borrow().generation == generation
    }

    fn send(&self, message: &WireMessage) {
        let inner = self.inner.borrow();
        if let Some(socket) = &inner.socket {
            let _ = socket.ws.send_with_u8_array(&message.encode());
        }
    }

    fn on_open(&self, generation: u64) {
        if !self.current(generation) {
            return;
        }
        let peer_id = self.inner.borrow().peer_id.clone();
        self.send(&WireMessage::Join {
            sender_id: peer_id,
            supported_protocol_versions: vec![PROTOCOL_VERSION.to_owned()],
            metadata: Some(PeerMetadata { storage_id: None, is_ephemeral: true }),
        });
    }

    fn on_message(&self, generation: u64, event: MessageEvent) {
        if !self.current(generation) {
            return;
        }
        let Ok(buffer) = event.data().dyn_into::<js_sys::ArrayBuffer>() else {
            return;
        };
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        let message = match WireMessage::decode(&bytes) {
            Ok(message) => message,
            Err(e) => {
                leptos::logging::warn!("hindsight: ignoring a malformed message: {e}");
                return;
            }
        };
        match message {
            WireMessage::Peer { sender_id, .. } => self.on_joined(sender_id),
            WireMessage::Sync { document_id, data, .. } if document_id == self.inner.borrow().board_id => {
                self.on_sync(&data);
            }
            WireMessage::DocUnavailable { document_id, .. } => {
                let unknown = {
                    let inner = self.inner.borrow();
                    document_id == inner.board_id && inner.doc.get_heads().is_empty()
                };
                if unknown {
                    self.view.unavailable.set(true);
                }
            }
            WireMessage::Error { message } => {
                leptos::logging::warn!("hindsight: the server reported an error: {message}");
            }
            _ => {}
        }
    }

    /// The handshake completed: start syncing on a fresh sync state.
    fn on_joined(&self, server: PeerId) {
        let message = {
            let mut inner = self.inner.borrow_mut();
            inner.server = Some(server.clone());
            inner.attempts = 0;
            inner.sync = sync::State::new();
            let Inner { doc, sync, board_id, peer_id, .. } = &mut *inner;
            let data = doc.generate_sync_message(sync).map(|m| m.encode()).unwrap_or_default();
            // A peer that has nothing yet asks for the document; one with a copy syncs it.
            if doc.get_heads().is_empty() {
                WireMessage::Request { document_id: *board_id, sender_id: peer_id.clone(), target_id: server, data }
            } else {
                WireMessage::Sync { document_id: *board_id, sender_id: peer_id.clone(), target_id: server, data }
            }
        };
        self.view.status.set(Status::Connected);
        self.send(&message);
    }

    fn on_sync(&self, data: &[u8]) {
        let changed = {
            let mut inner = self.inner.borrow_mut();
            let before = inner.doc.get_heads();
            let Ok(message) = sync::Message::decode(data) else {
                leptos::logging::warn!("hindsight: ignoring a malformed sync message");
                return;
            };
            let Inner { doc, sync, .. } = &mut *inner;
            if let Err(e) = doc.receive_sync_message(sync, message) {
                leptos::logging::warn!("hindsight: could not apply the server's changes: {e}");
                return;
            }
            inner.doc.get_heads() != before
        };
        if changed {
            self.refresh();
        }
        self.push();
    }

    /// Sends whatever the sync protocol says the server lacks, if connected.
    fn push(&self) {
        let message = {
            let mut inner = self.inner.borrow_mut();
            let Some(server) = inner.server.clone() else {
                drop(inner);
                self.update_unsynced();
                return;
            };
            let Inner { doc, sync, board_id, peer_id, .. } = &mut *inner;
            doc.generate_sync_message(sync).map(|m| WireMessage::Sync {
                document_id: *board_id,
                sender_id: peer_id.clone(),
                target_id: server,
                data: m.encode(),
            })
        };
        if let Some(message) = message {
            self.send(&message);
        }
        self.update_unsynced();
    }

    fn update_unsynced(&self) {
        let unsynced = {
            let inner = self.inner.borrow();
            inner.sync.their_heads.as_deref() != Some(&inner.doc.get_heads()[..])
        };
        if self.view.unsynced.get_untracked() != unsynced {
            self.view.unsynced.set(unsynced);
        }
    }

    /// Re-reads the board from the local document for the UI.
    fn refresh(&self) {
        let board = {
            let inner = self.inner.borrow();
            if inner.doc.get_heads().is_empty() {
                return;
            }
            Board::read(&inner.doc)
        };
        match board {
            Ok(board) => self.view.board.set(Some(board)),
            Err(e) => leptos::logging::warn!("hindsight: the board document is not readable: {e}"),
        }
    }

    fn on_close(&self, generation: u64) {
        if !self.current(generation) {
            return;
        }
        {
            let mut inner = self.inner.borrow_mut();
            inner.server = None;
            inner.attempts += 1;
        }
        let online = window().navigator().on_line();
        self.view.status.set(if online { Status::Reconnecting } else { Status::Offline });
        self.update_unsynced();
        self.schedule_reconnect(generation);
    }

    /// Tries again after an exponential backoff (0.25 s doubling up to 8 s), unless a newer
    /// socket took over meanwhile.
    fn schedule_reconnect(&self, generation: u64) {
        if self.view.unavailable.get_untracked() {
            return;
        }
        let attempts = self.inner.borrow().attempts.min(5);
        let delay = Duration::from_millis(250 << attempts);
        let session = self.clone();
        set_timeout(
            move || {
                if session.current(generation) {
                    session.connect();
                }
            },
            delay,
        );
    }
}
