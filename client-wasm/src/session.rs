//! The live link to one board: local Automerge copies of the board and of this participant's
//! private desk, the WebSocket with automatic reconnect, and the automerge-repo sync protocol.
//! A team page uses the same session for its team's ledger, with no desk.
//!
//! The local copies are the source of truth for the UI. Edits apply to them at once, whether or
//! not the server is reachable; the sync protocol sends them whenever a connection is up, so
//! edits made offline merge when the network returns. Each new connection starts fresh sync
//! states, and the first exchange tells both sides what the other lacks.
//!
//! Anonymity: every change to the shared board is made under a fresh, unlinkable actor id and with
//! no timestamp, so nothing in the board's history ties two changes to one browser. Notes are
//! written on the desk, which only this browser and the server ever hold.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use automerge::ChangeHash;
use automerge::transaction::{CommitOptions, Transaction};
use hindsight_shared::client::{ClientError, ClientReplica};
use hindsight_shared::ids::{DocumentId, PeerId, fresh_board_actor};
use hindsight_shared::ledger::Ledger;
use hindsight_shared::presence::{Notice, PresenceEntry, merge_roster};
use hindsight_shared::protocol::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use hindsight_shared::schema::{Board, Desk, SchemaError};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::focus::keeping_focus;

/// How long a connection may stay silent after changes were sent on it before it counts as
/// dead. The server acknowledges every change it stores, in milliseconds on a healthy
/// connection; any message from it (an acknowledgement, a heartbeat, another peer's change)
/// shows the connection is alive.
const ANSWER_TIMEOUT_MS: f64 = 8_000.0;
/// How long a connection may stay silent before it counts as dead: the server sends at least a
/// roster heartbeat every 15 seconds (a browser cannot see WebSocket pings).
const SILENCE_TIMEOUT_MS: f64 = 40_000.0;
/// How long opening a connection, handshake included, may take.
const CONNECT_TIMEOUT_MS: f64 = 10_000.0;
use crate::storage::Storage;

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
    /// The team's ledger, on a team page (whose session has no board and no desk).
    pub ledger: RwSignal<Option<Ledger>>,
    pub desk: RwSignal<Desk>,
    pub status: RwSignal<Status>,
    /// The server does not know this board (or this browser's desk).
    pub unavailable: RwSignal<bool>,
    /// Local edits the server has not acknowledged yet.
    pub unsynced: RwSignal<bool>,
    /// How many local changes wait to reach the server.
    pub pending: RwSignal<usize>,
    /// This browser's offline copy holds the documents as they are now.
    pub stored: RwSignal<bool>,
    /// Who is here, as the server last said.
    pub people: RwSignal<Vec<PresenceEntry>>,
    /// The server's clock minus this browser's, in milliseconds.
    pub clock_offset: RwSignal<i64>,
    /// The reason the server last refused one of our changes.
    pub refusal: RwSignal<Option<String>>,
    /// Texts of notes a refusal took away, kept until the participant dismisses them.
    pub lost_notes: RwSignal<Vec<String>>,
}

/// A handle to the session of one board. Cheap to clone.
#[derive(Clone)]
pub struct BoardSession {
    inner: Rc<RefCell<Inner>>,
    pub view: BoardView,
}

/// One document kept in sync with the server (the client side of the sync protocol, with what
/// the server acknowledged, is the `ClientReplica`'s), and what of it this browser last stored.
struct Document {
    replica: ClientReplica,
    /// The heads and acknowledged heads last written to storage.
    stored: (Vec<ChangeHash>, Vec<ChangeHash>),
}

impl Document {
    fn new(id: DocumentId) -> Self {
        Self { replica: ClientReplica::new(id), stored: Default::default() }
    }
}

struct Inner {
    peer_id: PeerId,
    /// The board, or on a team page the ledger.
    board: Document,
    /// This participant's desk; none on a team page.
    desk: Option<Document>,
    /// What the first document is.
    primary: Primary,
    socket: Option<Socket>,
    /// The server's peer id, once the handshake on the current socket completed.
    server: Option<PeerId>,
    /// Failed attempts since the last successful handshake, for backoff.
    attempts: u32,
    /// Bumped on every new socket, so callbacks of an old socket do nothing.
    generation: u64,
    /// When the current socket was opened, when it last brought a message, and since when
    /// changes sent on it wait for the server's answer (all `Date.now()` milliseconds). A
    /// connection whose network died without closing it is noticed by these.
    opened_at: f64,
    heard_at: f64,
    unanswered_since: Option<f64>,
    /// The offline copy, once opened.
    storage: Option<Storage>,
    /// A save to storage is scheduled.
    save_scheduled: bool,
    /// Changes made while no connection was up, to say so if the server refuses one.
    made_offline: HashSet<ChangeHash>,
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

/// What a session's first document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Primary {
    Board,
    Ledger,
}

/// Which of the two documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Board,
    Desk,
}

impl BoardSession {
    /// Starts syncing a board and this participant's desk: connects now and keeps reconnecting
    /// for the life of the page.
    pub fn start(board: DocumentId, desk: DocumentId) -> Self {
        Self::start_with(board, Some(desk), Primary::Board)
    }

    /// Starts syncing a team's ledger, for the team page.
    pub fn start_team(ledger: DocumentId) -> Self {
        Self::start_with(ledger, None, Primary::Ledger)
    }

    fn start_with(board: DocumentId, desk: Option<DocumentId>, primary: Primary) -> Self {
        let view = BoardView {
            board: RwSignal::new(None),
            ledger: RwSignal::new(None),
            desk: RwSignal::new(Desk::default()),
            status: RwSignal::new(Status::Connecting),
            unavailable: RwSignal::new(false),
            unsynced: RwSignal::new(false),
            pending: RwSignal::new(0),
            stored: RwSignal::new(false),
            people: RwSignal::new(Vec::new()),
            clock_offset: RwSignal::new(0),
            refusal: RwSignal::new(None),
            lost_notes: RwSignal::new(Vec::new()),
        };
        let inner = Inner {
            peer_id: PeerId::from(format!("browser-{}", PeerId::random())),
            board: Document::new(board),
            desk: desk.map(Document::new),
            primary,
            socket: None,
            server: None,
            attempts: 0,
            generation: 0,
            opened_at: 0.0,
            heard_at: 0.0,
            unanswered_since: None,
            storage: None,
            save_scheduled: false,
            made_offline: HashSet::new(),
        };
        let session = Self { inner: Rc::new(RefCell::new(inner)), view };
        session.connect();
        let restore = session.clone();
        spawn_local(async move { restore.restore().await });
        // Come back at once when the browser regains the network, and let go of the connection
        // at once when it loses it.
        let online = session.clone();
        let _ = window_event_listener(leptos::ev::online, move |_| {
            if online.inner.borrow().server.is_none() {
                online.connect();
            }
        });
        let offline = session.clone();
        let _ = window_event_listener(leptos::ev::offline, move |_| offline.connection_lost(Status::Offline));
        let watchdog = session.clone();
        let _ = set_interval_with_handle(move || watchdog.check_alive(), Duration::from_secs(1));
        session
    }

    /// Changes the shared board: under a fresh actor and without a timestamp, so the change
    /// cannot be tied to any other (the actor sorts after every other, which keeps applying the
    /// change cheap everywhere: see `fresh_board_actor`).
    pub fn change_board(
        &self,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>,
    ) -> Result<(), SchemaError> {
        {
            let mut inner = self.inner.borrow_mut();
            let actor = fresh_board_actor(inner.board.replica.doc());
            inner.board.replica.doc_mut().set_actor(actor);
        }
        self.change(Which::Board, edit)
    }

    /// Changes this participant's private desk.
    pub fn change_desk(
        &self,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>,
    ) -> Result<(), SchemaError> {
        self.change(Which::Desk, edit)
    }

    fn change(
        &self,
        which: Which,
        edit: impl FnOnce(&mut Transaction<'_>) -> Result<(), SchemaError>,
    ) -> Result<(), SchemaError> {
        {
            let mut inner = self.inner.borrow_mut();
            let offline = inner.server.is_none();
            let Some(document) = inner.document(which) else { return Ok(()) };
            let mut tx = document.replica.doc_mut().transaction();
            let hash = match edit(&mut tx) {
                Ok(()) => tx.commit_with(CommitOptions::default().with_time(0)).0,
                Err(e) => {
                    tx.rollback();
                    return Err(e);
                }
            };
            if let (Some(hash), true) = (hash, offline) {
                inner.made_offline.insert(hash);
            }
        }
        self.refresh(which);
        self.push(which);
        Ok(())
    }

    /// Loads this browser's offline copies and merges them in (the server may have sent a
    /// newer state meanwhile; merging is order-free).
    async fn restore(&self) {
        let Some(storage) = Storage::open().await else { return };
        let ids: Vec<(Which, DocumentId)> = {
            let inner = self.inner.borrow();
            std::iter::once((Which::Board, inner.board.replica.id()))
                .chain(inner.desk.as_ref().map(|desk| (Which::Desk, desk.replica.id())))
                .collect()
        };
        for (which, id) in ids {
            let saved = storage.get(&id.to_string()).await;
            let acked = storage.get(&format!("{id}:acked")).await;
            let changed = {
                let mut inner = self.inner.borrow_mut();
                let Some(document) = inner.document(which) else { continue };
                let replica = &mut document.replica;
                if let Some(acked) = acked
                    && let Err(e) = replica.restore_acked(&acked)
                {
                    leptos::logging::warn!("hindsight: ignoring damaged acknowledged heads: {e}");
                }
                let before = replica.doc().get_heads();
                if let Some(saved) = saved
                    && let Err(e) = replica.merge_saved(&saved)
                {
                    leptos::logging::warn!("hindsight: ignoring a damaged offline copy: {e}");
                }
                replica.doc().get_heads() != before
            };
            if changed {
                self.refresh(which);
                self.push(which);
            }
        }
        self.inner.borrow_mut().storage = Some(storage);
        self.update_unsynced();
    }

    /// Saves both documents to storage soon, once for a burst of changes.
    fn schedule_save(&self) {
        {
            let mut inner = self.inner.borrow_mut();
            if inner.storage.is_none() || inner.save_scheduled {
                return;
            }
            inner.save_scheduled = true;
        }
        self.view.stored.set(false);
        let session = self.clone();
        set_timeout(move || spawn_local(async move { session.save().await }), Duration::from_millis(200));
    }

    async fn save(&self) {
        let (storage, writes) = {
            let mut inner = self.inner.borrow_mut();
            inner.save_scheduled = false;
            let Some(storage) = inner.storage.clone() else { return };
            let mut writes: Vec<(String, Vec<u8>)> = Vec::new();
            for which in [Which::Board, Which::Desk] {
                let Some(document) = inner.document(which) else { continue };
                let now = (document.replica.doc().get_heads(), document.replica.acked_heads().to_vec());
                if now.0.is_empty() || now == document.stored {
                    continue;
                }
                let id = document.replica.id();
                writes.push((id.to_string(), document.replica.doc().save()));
                writes.push((format!("{id}:acked"), document.replica.acked_bytes()));
                document.stored = now;
            }
            (storage, writes)
        };
        let mut all_written = true;
        for (key, bytes) in writes {
            all_written &= storage.put(&key, &bytes).await;
        }
        if all_written && !self.inner.borrow().save_scheduled {
            self.view.stored.set(true);
        }
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
            inner.opened_at = js_sys::Date::now();
            inner.unanswered_since = None;
            inner.generation
        };
        let Ok(ws) = WebSocket::new(&Self::ws_url()) else {
            self.schedule_reconnect(generation);
            return;
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

    /// Sends a message; `expects_answer` when it carries changes (or asks for a document) the
    /// server must answer, which starts the answer timeout if none runs.
    fn send(&self, message: &WireMessage, expects_answer: bool) {
        let mut inner = self.inner.borrow_mut();
        let Some(socket) = &inner.socket else { return };
        let _ = socket.ws.send_with_u8_array(&message.encode());
        if expects_answer && inner.unanswered_since.is_none() {
            inner.unanswered_since = Some(js_sys::Date::now());
        }
    }

    /// Lets go of a connection that stopped answering: a network that died without closing the
    /// socket (a laptop lid, a captive portal, a dropped VPN) sends no close, so the silence is
    /// the only sign of it.
    fn check_alive(&self) {
        let now = js_sys::Date::now();
        let dead = {
            let inner = self.inner.borrow();
            match (&inner.socket, &inner.server) {
                (None, _) => false,
                (Some(_), None) => now - inner.opened_at > CONNECT_TIMEOUT_MS,
                (Some(_), Some(_)) => {
                    inner.unanswered_since.is_some_and(|since| now - since > ANSWER_TIMEOUT_MS)
                        || now - inner.heard_at > SILENCE_TIMEOUT_MS
                }
            }
        };
        if dead {
            self.connection_lost(Status::Offline);
        }
    }

    /// Closes the current connection, if any, says `status`, and tries again after a backoff.
    fn connection_lost(&self, status: Status) {
        let generation = {
            let mut inner = self.inner.borrow_mut();
            if inner.socket.is_none() {
                return;
            }
            inner.socket = None;
            inner.server = None;
            inner.unanswered_since = None;
            inner.attempts += 1;
            inner.generation
        };
        self.view.status.set(status);
        self.update_unsynced();
        self.schedule_reconnect(generation);
    }

    fn on_open(&self, generation: u64) {
        if !self.current(generation) {
            return;
        }
        let peer_id = self.inner.borrow().peer_id.clone();
        self.send(
            &WireMessage::Join {
                sender_id: peer_id,
                supported_protocol_versions: vec![PROTOCOL_VERSION.to_owned()],
                metadata: Some(PeerMetadata { storage_id: None, is_ephemeral: true }),
            },
            false,
        );
    }

    fn on_message(&self, generation: u64, event: MessageEvent) {
        if !self.current(generation) {
            return;
        }
        {
            let mut inner = self.inner.borrow_mut();
            inner.heard_at = js_sys::Date::now();
            inner.unanswered_since = None;
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
            WireMessage::Sync { document_id, data, .. } => {
                if let Some(which) = self.which(document_id) {
                    self.on_sync(which, &data);
                }
            }
            // Only the server's notices are believed: a peer's ephemeral message that happens to
            // decode as one (a forged roster, a forged refusal) is ignored.
            WireMessage::Ephemeral { document_id, sender_id, data, .. } if self.is_server(&sender_id) => {
                if let (Some(which), Ok(notice)) = (self.which(document_id), Notice::decode(&data)) {
                    self.on_notice(which, notice);
                }
            }
            WireMessage::DocUnavailable { document_id, .. } if self.which(document_id).is_some() => {
                self.view.unavailable.set(true);
            }
            WireMessage::Error { message } => {
                leptos::logging::warn!("hindsight: the server reported an error: {message}");
            }
            _ => {}
        }
    }

    /// True if `sender` is the server this socket's handshake named.
    fn is_server(&self, sender: &PeerId) -> bool {
        self.inner.borrow().server.as_ref() == Some(sender)
    }

    fn which(&self, document_id: DocumentId) -> Option<Which> {
        let inner = self.inner.borrow();
        if document_id == inner.board.replica.id() {
            Some(Which::Board)
        } else if inner.desk.as_ref().is_some_and(|desk| document_id == desk.replica.id()) {
            Some(Which::Desk)
        } else {
            None
        }
    }

    /// The handshake completed: sync both documents on fresh states, the desk first (it tells
    /// the server who this connection is).
    fn on_joined(&self, server: PeerId) {
        {
            let mut inner = self.inner.borrow_mut();
            inner.server = Some(server);
            inner.attempts = 0;
            inner.board.replica.restart_sync();
            if let Some(desk) = &mut inner.desk {
                desk.replica.restart_sync();
            }
        }
        self.view.status.set(Status::Connected);
        self.push(Which::Desk);
        self.push(Which::Board);
    }

    fn on_sync(&self, which: Which, data: &[u8]) {
        let received = match self.inner.borrow_mut().document(which) {
            Some(document) => document.replica.receive(data),
            None => return,
        };
        let changed = match received {
            Ok(changed) => changed,
            Err(ClientError::Decode(_)) => {
                leptos::logging::warn!("hindsight: ignoring a malformed sync message");
                return;
            }
            Err(e) => {
                leptos::logging::warn!("hindsight: {e}");
                return;
            }
        };
        if changed {
            self.refresh(which);
        }
        self.push(which);
    }

    fn on_notice(&self, which: Which, notice: Notice) {
        match notice {
            Notice::Presence { now_ms, participants, full, .. } => {
                self.view.clock_offset.set(now_ms - js_sys::Date::now() as i64);
                self.view.people.update(|people| merge_roster(people, participants, full));
            }
            Notice::Refused { reason, changes } => {
                // The server's state wins: forget what it refused, and sync afresh. A note that
                // goes with it is quoted back, so its text is not lost to its author.
                let before = self.view.desk.get_untracked();
                let board_before = self.view.board.get_untracked();
                let offline = {
                    let mut inner = self.inner.borrow_mut();
                    changes.iter().any(|hash| inner.made_offline.remove(&ChangeHash(*hash)))
                };
                let dropped = self
                    .inner
                    .borrow_mut()
                    .document(which)
                    .map(|document| document.replica.drop_refused(changes.into_iter().map(ChangeHash)));
                if let Some(Err(e)) = dropped {
                    leptos::logging::warn!("hindsight: {e}");
                }
                self.refresh(which);
                let after = self.view.desk.get_untracked();
                // Say what was taken back, and that it was made offline when it was: the
                // server's reason alone ("grouping is not possible in the vote phase") does not
                // tell someone back from a train what happened to their work.
                let what = board_before
                    .zip(self.view.board.get_untracked())
                    .and_then(|(before, after)| hindsight_shared::text::undone(&before, &after));
                let reason = match (what, offline) {
                    (Some(what), true) => format!("{what}, made while offline, arrived too late: {reason}"),
                    (Some(what), false) => format!("{what}: {reason}"),
                    (None, true) => format!("a change made while offline arrived too late: {reason}"),
                    (None, false) => reason,
                };
                let lost: Vec<String> = before
                    .drafts
                    .values()
                    .filter(|d| after.drafts.get(&d.id).is_none_or(|a| a.text != d.text))
                    .map(|d| d.text.clone())
                    .collect();
                if !lost.is_empty() {
                    self.view.lost_notes.update(|notes| notes.extend(lost));
                }
                self.view.refusal.set(Some(reason));
                self.push(which);
            }
        }
    }

    /// Sends whatever the sync protocol says the server lacks, if connected.
    fn push(&self, which: Which) {
        let message = {
            let mut inner = self.inner.borrow_mut();
            let Some(server) = inner.server.clone() else {
                drop(inner);
                self.update_unsynced();
                return;
            };
            let peer_id = inner.peer_id.clone();
            inner.document(which).and_then(|document| document.replica.next_message()).map(|outgoing| {
                // Changes, and a request for the document, are answered by the server. A peer
                // that has nothing yet asks for the document; one with a copy syncs it.
                let expects_answer = outgoing.expects_answer();
                (outgoing.into_wire(peer_id, server), expects_answer)
            })
        };
        if let Some((message, expects_answer)) = message {
            self.send(&message, expects_answer);
        }
        self.update_unsynced();
    }

    fn update_unsynced(&self) {
        let pending = {
            let mut inner = self.inner.borrow_mut();
            let pending = inner.board.replica.pending() + inner.desk.as_ref().map_or(0, |d| d.replica.pending());
            if pending == 0 {
                // Everything made offline reached the server and was kept.
                inner.made_offline.clear();
            }
            pending
        };
        if self.view.pending.get_untracked() != pending {
            self.view.pending.set(pending);
        }
        if self.view.unsynced.get_untracked() != (pending > 0) {
            self.view.unsynced.set(pending > 0);
        }
        self.schedule_save();
    }

    /// Re-reads a document for the UI.
    fn refresh(&self, which: Which) {
        let inner = self.inner.borrow();
        let doc = match which {
            Which::Board => inner.board.replica.doc(),
            Which::Desk => match &inner.desk {
                Some(desk) => desk.replica.doc(),
                None => return,
            },
        };
        if doc.get_heads().is_empty() {
            return;
        }
        match which {
            Which::Board if inner.primary == Primary::Ledger => match Ledger::read(doc) {
                Ok(ledger) => {
                    drop(inner);
                    keeping_focus(|| self.view.ledger.set(Some(ledger)));
                }
                Err(e) => leptos::logging::warn!("hindsight: the ledger is not readable: {e}"),
            },
            Which::Board => match Board::read(doc) {
                Ok(board) => {
                    drop(inner);
                    keeping_focus(|| self.view.board.set(Some(board)));
                }
                Err(e) => leptos::logging::warn!("hindsight: the board document is not readable: {e}"),
            },
            Which::Desk => match Desk::read(doc) {
                Ok(desk) => {
                    drop(inner);
                    keeping_focus(|| self.view.desk.set(desk));
                }
                Err(e) => leptos::logging::warn!("hindsight: the desk document is not readable: {e}"),
            },
        }
    }

    fn on_close(&self, generation: u64) {
        if !self.current(generation) {
            return;
        }
        // A connection that died in silence stays "offline" until one succeeds again.
        let offline = !window().navigator().on_line() || self.view.status.get_untracked() == Status::Offline;
        self.connection_lost(if offline { Status::Offline } else { Status::Reconnecting });
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

impl Inner {
    fn document(&mut self, which: Which) -> Option<&mut Document> {
        match which {
            Which::Board => Some(&mut self.board),
            Which::Desk => self.desk.as_mut(),
        }
    }
}
