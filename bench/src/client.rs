//! One benchmark client: a full automerge-repo peer over a real WebSocket, holding a replica of
//! the board (and, on Hindsight, its desk), that writes notes and records when other clients'
//! notes reach its replica.
//!
//! The same user action — "add or edit a note, and everyone sees it" — takes each server's own
//! path. On the reference server the client writes the note into the shared document, which the
//! server relays. On Hindsight the client writes the note on its private desk; the server checks
//! it, publishes it on the board, and every client (the writer too) receives it.
//!
//! Every note text starts with a marker `#<writer>:<seq>#`; a client that applies a change whose
//! text carries another writer's marker reports it to the [`Tracker`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use automerge::ScalarValue;
use automerge::sync;
use automerge::transaction::{CommitOptions, Transaction};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use hindsight_shared::api;
use hindsight_shared::client::{ClientReplica, carried_changes};
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, PeerId};
use hindsight_shared::presence::Notice;
use hindsight_shared::protocol::{PROTOCOL_VERSION, PeerMetadata, WireMessage};
use hindsight_shared::schema::{self, Draft, Note, Phase};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::servers::Kind;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single protocol step may take before the run is declared broken.
const STEP: Duration = Duration::from_secs(60);

/// Collects propagation latencies: a write counts once every other client of its board has it.
#[derive(Default)]
pub struct Tracker {
    inner: Mutex<TrackerInner>,
}

#[derive(Default)]
struct TrackerInner {
    pending: HashMap<(u32, u32), Pending>,
    histogram: Option<Histogram<u64>>,
    delivered: u64,
}

struct Pending {
    sent: Instant,
    waiting_for: u32,
    latest: Instant,
}

impl Tracker {
    /// A write that `receivers` other clients must see.
    pub fn sent(&self, writer: u32, seq: u32, receivers: u32) {
        let now = Instant::now();
        if let Ok(mut inner) = self.inner.lock() {
            inner.pending.insert((writer, seq), Pending { sent: now, waiting_for: receivers, latest: now });
        }
    }

    /// A client applied writer's `seq`.
    fn seen(&self, writer: u32, seq: u32) {
        let now = Instant::now();
        let Ok(mut inner) = self.inner.lock() else { return };
        let done = match inner.pending.get_mut(&(writer, seq)) {
            Some(p) => {
                p.latest = now;
                p.waiting_for = p.waiting_for.saturating_sub(1);
                (p.waiting_for == 0).then(|| p.latest.duration_since(p.sent))
            }
            None => None,
        };
        if let Some(latency) = done {
            inner.pending.remove(&(writer, seq));
            inner.delivered += 1;
            let histogram = inner.histogram.get_or_insert_with(new_histogram);
            let _ = histogram.record(latency.as_micros().max(1) as u64);
        }
    }

    /// Takes the latencies recorded so far (microseconds), how many writes were delivered to
    /// everyone, and how many are still missing somewhere; starts afresh.
    pub fn take(&self) -> (Histogram<u64>, u64, u64) {
        let Ok(mut inner) = self.inner.lock() else { return (new_histogram(), 0, 0) };
        let histogram = inner.histogram.take().unwrap_or_else(new_histogram);
        let missing = inner.pending.len() as u64;
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            for ((writer, seq), p) in &inner.pending {
                eprintln!("missing: writer {writer} write {seq}, {} receivers short", p.waiting_for);
            }
        }
        let delivered = std::mem::take(&mut inner.delivered);
        inner.pending.clear();
        (histogram, delivered, missing)
    }

    /// How many writes are still on their way.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().map(|i| i.pending.len()).unwrap_or(0)
    }
}

fn new_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Reads `#writer:seq#` from a note's text.
fn marker(text: &str) -> Option<(u32, u32)> {
    let rest = text.strip_prefix('#')?;
    let (marker, _) = rest.split_once('#')?;
    let (writer, seq) = marker.split_once(':')?;
    Some((writer.parse().ok()?, seq.parse().ok()?))
}

/// A board on a server, and how clients join it.
#[derive(Debug, Clone)]
pub struct BoardSpec {
    pub kind: Kind,
    pub ws_url: String,
    pub http_url: String,
    pub board: DocumentId,
    /// Hindsight: the key that makes the first client facilitator.
    pub facilitator_key: Option<String>,
}

/// A connected client.
pub struct Client {
    pub id: u32,
    spec: BoardSpec,
    me: PeerId,
    server: PeerId,
    sink: SplitSink<Socket, Message>,
    /// Frames as a background task read them: it reads all the time, as a browser does, so the
    /// socket answers pings even while this client is idle (the reference server drops a client
    /// that misses one, five seconds apart).
    stream: mpsc::UnboundedReceiver<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    board: ClientReplica,
    desk: Option<ClientReplica>,
    /// Notes this client wrote: id -> (text seq, column).
    mine: Vec<String>,
    seq: u32,
    tracker: Arc<Tracker>,
    /// Sync messages arrived that we have not answered yet.
    owed_board: bool,
    owed_desk: bool,
}

/// Creates a board on the server: over HTTP on Hindsight, by pushing a new document to the
/// reference server.
pub async fn create_board(kind: Kind, ws_url: &str, http_url: &str) -> anyhow::Result<BoardSpec> {
    match kind {
        Kind::Hindsight => {
            let body = api::CreateBoard { title: "Bench retro".into(), template: "start-stop-continue".into() };
            let created: api::BoardCreated = http_post(http_url, api::BOARDS, &body).await?;
            let board = created.board_id.parse()?;
            let key = Some(created.facilitator_key);
            Ok(BoardSpec { kind, ws_url: ws_url.into(), http_url: http_url.into(), board, facilitator_key: key })
        }
        Kind::Reference => {
            if std::env::var_os("BENCH_VERBOSE").is_some() {
                eprintln!("creating a board at {ws_url}");
            }
            let board = DocumentId::random();
            let template = hindsight_shared::templates::find("start-stop-continue").context("template")?;
            let doc = schema::new_board_document(automerge::ActorId::random(), "Bench retro", template, None)?;
            let spec =
                BoardSpec { kind, ws_url: ws_url.into(), http_url: http_url.into(), board, facilitator_key: None };
            let mut creator =
                Client::connect(u32::MAX, &spec, Arc::new(Tracker::default())).await.context("connecting")?;
            creator.board = ClientReplica::with_document(spec.board, doc);
            creator.push_board().await.context("sending the new document")?;
            creator.wait_acknowledged().await.context("waiting for the server to store it")?;
            Ok(spec)
        }
    }
}

/// A minimal HTTP/1.1 POST of JSON, answered with JSON.
async fn http_post<T: serde::de::DeserializeOwned>(
    base: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<T> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await?;
    let body = serde_json::to_string(body)?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP body")?;
    if !head.starts_with("HTTP/1.1 2") {
        bail!("{path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(serde_json::from_str(body)?)
}

impl Client {
    /// Connects and completes the automerge-repo handshake.
    async fn connect(id: u32, spec: &BoardSpec, tracker: Arc<Tracker>) -> anyhow::Result<Self> {
        let (socket, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(&spec.ws_url)).await??;
        if let MaybeTlsStream::Plain(tcp) = socket.get_ref() {
            tcp.set_nodelay(true)?;
        }
        let (mut sink, mut stream) = socket.split();
        let me = PeerId::from(format!("bench-{id}-{}", PeerId::random()));
        let join = WireMessage::Join {
            sender_id: me.clone(),
            supported_protocol_versions: vec![PROTOCOL_VERSION.into()],
            // automerge-repo's server adapter hands this to its repo as is: always send it.
            metadata: Some(PeerMetadata { storage_id: None, is_ephemeral: true }),
        };
        sink.send(Message::Binary(join.encode().into())).await?;
        let server = loop {
            let frame = tokio::time::timeout(STEP, stream.next()).await?.context("closed during the handshake")??;
            if let Message::Binary(bytes) = frame
                && let WireMessage::Peer { sender_id, .. } = WireMessage::decode(&bytes)?
            {
                break sender_id;
            }
        };
        let (frames, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                if frames.send(frame).is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            id,
            spec: spec.clone(),
            me,
            server,
            sink,
            stream: received,
            board: ClientReplica::new(spec.board),
            desk: None,
            mine: Vec::new(),
            seq: 0,
            tracker,
            owed_board: false,
            owed_desk: false,
        })
    }

    /// Connects, joins (on Hindsight: over HTTP, the first client as facilitator) and syncs
    /// until the board is here.
    pub async fn open(id: u32, spec: &BoardSpec, facilitator: bool, tracker: Arc<Tracker>) -> anyhow::Result<Self> {
        let desk = match spec.kind {
            Kind::Hindsight => {
                let body = api::JoinBoard {
                    name: format!("bench {id}"),
                    facilitator_key: spec.facilitator_key.clone().filter(|_| facilitator),
                };
                let joined: api::JoinedBoard = http_post(&spec.http_url, &api::participants(spec.board), &body).await?;
                Some(joined.desk_id.parse::<DocumentId>()?)
            }
            Kind::Reference => None,
        };
        let mut client = Self::connect(id, spec, tracker).await?;
        if let Some(desk) = desk {
            client.desk = Some(ClientReplica::new(desk));
            client.push_desk().await?;
        }
        client.push_board().await?;
        while client.board.doc().get_heads().is_empty()
            || client.desk.as_ref().is_some_and(|d| d.doc().get_heads().is_empty())
        {
            client.receive_one().await?;
        }
        Ok(client)
    }

    fn message(&mut self, which_desk: bool) -> Option<WireMessage> {
        let (me, server) = (self.me.clone(), self.server.clone());
        let replica = if which_desk { self.desk.as_mut()? } else { &mut self.board };
        Some(replica.next_message()?.into_wire(me, server))
    }

    async fn send(&mut self, message: WireMessage) -> anyhow::Result<()> {
        self.sink.send(Message::Binary(message.encode().into())).await?;
        Ok(())
    }

    async fn push_board(&mut self) -> anyhow::Result<()> {
        if let Some(message) = self.message(false) {
            self.send(message).await?;
        }
        Ok(())
    }

    async fn push_desk(&mut self) -> anyhow::Result<()> {
        if let Some(message) = self.message(true) {
            self.send(message).await?;
        }
        Ok(())
    }

    /// Waits for a frame, handles it and every frame already waiting, then answers.
    pub async fn receive_one(&mut self) -> anyhow::Result<()> {
        let frame =
            tokio::time::timeout(STEP, self.stream.recv()).await?.context("the server closed the connection")??;
        self.handle(frame).await?;
        self.handle_ready().await?;
        self.answer().await
    }

    /// Handles the frames that have already arrived, without waiting.
    async fn handle_ready(&mut self) -> anyhow::Result<()> {
        loop {
            match self.stream.try_recv() {
                Ok(frame) => self.handle(frame?).await?,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => bail!("the server closed the connection"),
            }
        }
        Ok(())
    }

    async fn handle(&mut self, frame: Message) -> anyhow::Result<()> {
        let Message::Binary(bytes) = frame else { return Ok(()) };
        match WireMessage::decode(&bytes)? {
            WireMessage::Sync { document_id, data, .. } => {
                let message = sync::Message::decode(&data)?;
                if document_id == self.board.id() {
                    if !self.board.doc().get_heads().is_empty() {
                        self.report(&message)?;
                    }
                    self.board.receive_message(message)?;
                    self.owed_board = true;
                } else if let Some(desk) = self.desk.as_mut().filter(|d| d.id() == document_id) {
                    desk.receive_message(message)?;
                    self.owed_desk = true;
                }
            }
            WireMessage::Ephemeral { data, .. } => {
                if let Ok(Notice::Refused { reason, .. }) = Notice::decode(&data) {
                    bail!("the server refused a change: {reason}");
                }
            }
            WireMessage::Error { message } => bail!("the server sent an error: {message}"),
            WireMessage::DocUnavailable { .. } => bail!("the server does not have the board"),
            _ => {}
        }
        Ok(())
    }

    /// Reports other writers' notes carried by a sync message (they are applied right after),
    /// by reading the changes' operations rather than diffing the document. The changes may
    /// come as single changes, bundles or a document chunk, as Automerge 3 may send them.
    fn report(&self, message: &sync::Message) -> anyhow::Result<()> {
        let changes = carried_changes(message).context("the server's sync message carries malformed changes")?;
        for op in changes.into_iter().flat_map(|change| change.decode().operations) {
            if let automerge::legacy::OpType::Put(ScalarValue::Str(text)) = &op.action
                && let Some((writer, seq)) = marker(text)
                && writer != self.id
            {
                self.tracker.seen(writer, seq);
            }
        }
        Ok(())
    }

    /// Answers what was received (once, however many messages came in at once).
    async fn answer(&mut self) -> anyhow::Result<()> {
        if std::mem::take(&mut self.owed_board) {
            self.push_board().await?;
        }
        if std::mem::take(&mut self.owed_desk) {
            self.push_desk().await?;
        }
        Ok(())
    }

    /// Until the server acknowledged all our changes (its heads equal ours).
    pub async fn wait_acknowledged(&mut self) -> anyhow::Result<()> {
        loop {
            let board_done = self.board.server_heads() == Some(&self.board.doc().get_heads()[..]);
            let desk_done = self.desk.as_ref().is_none_or(|d| d.server_heads() == Some(&d.doc().get_heads()[..]));
            if board_done && desk_done {
                return Ok(());
            }
            self.receive_one().await?;
        }
    }

    /// Hindsight only: the facilitator moves the board to Group, where notes are published at
    /// once (as after "reveal all").
    pub async fn start_grouping(&mut self) -> anyhow::Result<()> {
        self.edit_board(|tx| edit::set_phase(tx, Phase::Group)).await?;
        self.wait_acknowledged().await
    }

    /// Makes one change to the board (under a fresh actor, as the browser does), sends it and
    /// waits until the server acknowledged it.
    pub async fn change_board(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<(), schema::SchemaError>,
    ) -> anyhow::Result<()> {
        self.edit_board(f).await?;
        self.wait_acknowledged().await
    }

    async fn edit_board(
        &mut self,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<(), schema::SchemaError>,
    ) -> anyhow::Result<()> {
        let board = self.board.doc_mut();
        let actor = hindsight_shared::ids::fresh_board_actor(board);
        board.set_actor(actor);
        let mut tx = board.transaction();
        f(&mut tx)?;
        tx.commit_with(CommitOptions::default().with_time(0));
        self.push_board().await
    }

    /// Adds a note, or edits one of this client's notes (every other write), the way a
    /// participant does on this server. `receivers` is how many other clients must see it.
    pub async fn write(&mut self, receivers: u32) -> anyhow::Result<()> {
        self.seq += 1;
        let text = format!("#{}:{}# note text {}", self.id, self.seq, "x".repeat(40));
        let edit_existing = self.seq.is_multiple_of(2) && !self.mine.is_empty();
        let id = if edit_existing {
            // A different note each time, cycling through this client's notes.
            self.mine[(self.seq as usize / 2).wrapping_mul(7) % self.mine.len()].clone()
        } else {
            let id = format!("n{}-{}", self.id, self.seq);
            self.mine.push(id.clone());
            id
        };
        self.tracker.sent(self.id, self.seq, receivers);
        match self.spec.kind {
            Kind::Reference => {
                let note =
                    Note { id: id.clone(), column: "start".into(), text, created_at: 0, cluster: None, author: None };
                let board = self.board.doc_mut();
                let actor = hindsight_shared::ids::fresh_board_actor(board);
                board.set_actor(actor);
                let mut tx = board.transaction();
                edit::publish_note(&mut tx, &note)?;
                tx.commit_with(CommitOptions::default().with_time(0));
                self.push_board().await
            }
            Kind::Hindsight => {
                let desk = self.desk.as_mut().context("a Hindsight client has a desk")?;
                let mut tx = desk.doc_mut().transaction();
                if edit_existing {
                    edit::set_draft_text(&mut tx, &id, &text)?;
                } else {
                    edit::add_draft(&mut tx, &Draft { id, column: "start".into(), text, created_at: 0 })?;
                }
                tx.commit_with(CommitOptions::default().with_time(0));
                self.push_desk().await
            }
        }
    }

    /// Adds `count` notes in as many changes (history), a hundred to a sync message, and waits
    /// until the board holds `expect` notes in all.
    pub async fn fill(&mut self, count: usize, expect: usize) -> anyhow::Result<()> {
        for i in 0..count {
            let text = format!("Prefilled note {i}: {}", "y".repeat(30));
            let id = format!("fill-{}-{}-{i}", self.id, self.seq);
            match self.spec.kind {
                Kind::Reference => {
                    let note = Note { id, column: "stop".into(), text, created_at: 0, cluster: None, author: None };
                    let mut tx = self.board.doc_mut().transaction();
                    edit::publish_note(&mut tx, &note)?;
                    tx.commit_with(CommitOptions::default().with_time(0));
                }
                Kind::Hindsight => {
                    let desk = self.desk.as_mut().context("desk")?;
                    let mut tx = desk.doc_mut().transaction();
                    edit::add_draft(&mut tx, &Draft { id, column: "stop".into(), text, created_at: 0 })?;
                    tx.commit_with(CommitOptions::default().with_time(0));
                }
            }
            if i % 100 == 99 || i + 1 == count {
                match self.spec.kind {
                    Kind::Reference => self.push_board().await?,
                    Kind::Hindsight => self.push_desk().await?,
                }
                self.wait_acknowledged().await?;
                if std::env::var_os("BENCH_VERBOSE").is_some() {
                    eprintln!("filled {} notes; the board shows {}", i + 1, self.board_notes());
                }
            }
        }
        // Until the board itself shows them all (Hindsight publishes them).
        while self.board_notes() < expect {
            self.receive_one().await?;
            if std::env::var_os("BENCH_VERBOSE").is_some() {
                eprintln!("the board shows {}", self.board_notes());
            }
        }
        Ok(())
    }

    /// How many notes the board replica holds.
    pub fn board_notes(&self) -> usize {
        match automerge::ReadDoc::get(self.board.doc(), automerge::ROOT, "notes") {
            Ok(Some((_, notes))) => automerge::ReadDoc::length(self.board.doc(), &notes),
            _ => 0,
        }
    }

    /// Connects as a viewer (no desk, no writes): requests the board and syncs it.
    pub async fn view(id: u32, spec: &BoardSpec, tracker: Arc<Tracker>) -> anyhow::Result<Self> {
        let mut client = Self::connect(id, spec, tracker).await?;
        client.push_board().await?;
        while client.board.doc().get_heads().is_empty() {
            client.receive_one().await?;
        }
        Ok(client)
    }

    /// Runs until `done`: writes at `rate` per second (from `offset` on, until `writing` is
    /// cancelled), and answers every sync message throughout.
    pub async fn run(
        mut self,
        rate: f64,
        offset: Duration,
        receivers: u32,
        writing: tokio_util::sync::CancellationToken,
        done: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Self> {
        let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let mut ticks = tokio::time::interval_at(Instant::now() + offset, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = done.cancelled() => return Ok(self),
                _ = ticks.tick(), if rate > 0.0 && !writing.is_cancelled() => self.write(receivers).await?,
                frame = self.stream.recv() => match frame {
                    Some(Ok(frame)) => {
                        self.handle(frame).await?;
                        self.handle_ready().await?;
                        self.answer().await?;
                    }
                    Some(Err(e)) => bail!("socket error: {e}"),
                    None => bail!("the server closed the connection"),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn markers_parse() {
        assert_eq!(super::marker("#12:7# note text"), Some((12, 7)));
        assert_eq!(super::marker("no marker"), None);
        assert_eq!(super::marker("#x:7#"), None);
    }
}
