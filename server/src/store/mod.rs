//! Durable storage of boards: board records, document snapshots and incremental changes, in
//! SQLite (the default, one file in the data directory) or Postgres (`--database-url`).
//!
//! One writer thread owns the database connection. Requests reach it over a channel and every
//! write that is waiting when it wakes up goes into one transaction (group commit), so a busy
//! server pays one `fsync` for many boards. A call to [`Store::append_many`] returns only after its
//! transaction committed: the caller may then tell peers the changes are accepted. The writer, the
//! batching and the compaction are the same for both databases; a [`Backend`] only speaks SQL
//! (`sqlite.rs`, `postgres.rs`).
//!
//! Each document is a snapshot (`Automerge::save`) plus the changes accepted since, one row per
//! change keyed by its hash. When a document has gathered [`COMPACT_AFTER`] changes, and they
//! take at least half as many bytes as its snapshot (so a large board is not reloaded every few
//! hundred small changes), a separate
//! compactor thread loads snapshot and changes, saves one new snapshot, and the writer swaps it
//! in and deletes exactly the changes it contains, in one transaction. A crash at any point
//! leaves either the old rows or the new ones, and loading both would merge to the same document.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;

use hindsight_shared::ids::DocumentId;
use tokio::sync::{mpsc, oneshot};

use crate::key::KeyHash;

mod lease;
mod postgres;
mod sqlite;

pub use lease::{Fence, Holder, Lease, LeaseAnswer, LeaseOp};

/// A document is compacted into a new snapshot once this many changes are stored beside it (and
/// they take at least half the snapshot's bytes).
pub const COMPACT_AFTER: usize = 256;

/// What this run knows of a document's rows: the changes beside its snapshot, and their bytes.
#[derive(Debug, Default, Clone)]
struct Pending {
    changes: usize,
    bytes: usize,
    snapshot_bytes: usize,
    /// The lease the document's last changes were stored under (cluster mode): its compaction
    /// carries it, so a node that lost the board cannot replace the next owner's snapshot.
    fence: Option<Fence>,
}

impl Pending {
    fn due(&self) -> bool {
        self.changes >= COMPACT_AFTER && self.bytes >= self.snapshot_bytes / 2
    }
}

/// A stored document: its latest snapshot and the changes accepted after it.
#[derive(Debug, Default)]
pub struct StoredDoc {
    pub snapshot: Vec<u8>,
    pub changes: Vec<Vec<u8>>,
}

/// One accepted change, as Automerge encodes it.
#[derive(Debug, Clone)]
pub struct StoredChange {
    pub hash: [u8; 32],
    pub bytes: Vec<u8>,
}

/// What the server knows about a board (or a team) outside its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardRecord {
    pub id: DocumentId,
    pub created_at_ms: i64,
    /// SHA-256 of the facilitator key (of a team: the team key); the key itself is never stored.
    pub facilitator_key_hash: KeyHash,
    pub kind: DocKind,
    /// The team a board belongs to. Kept here, not in the board's document, which every
    /// participant receives: a team id is the team's capability.
    pub team: Option<DocumentId>,
}

/// What a stored top-level document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// A retro's board (with its participants' desks).
    Board,
    /// A team's ledger.
    Team,
}

impl DocKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Board => "board",
            Self::Team => "team",
        }
    }

    fn parse(kind: &str) -> Self {
        if kind == Self::Team.as_str() { Self::Team } else { Self::Board }
    }
}

/// Someone who joined a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantRecord {
    pub board: DocumentId,
    /// Public id, shown in presence.
    pub id: String,
    pub name: String,
    /// Secret: the id of their desk document.
    pub desk: DocumentId,
    pub joined_at_ms: i64,
}

/// A board as stored: its record, its document, and each participant with the size of their
/// desk in storage (desks themselves are loaded when they are needed).
#[derive(Debug)]
pub struct StoredBoard {
    pub record: BoardRecord,
    pub doc: StoredDoc,
    pub participants: Vec<(ParticipantRecord, usize)>,
}

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not create the data directory {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("could not start the {name} thread: {source}")]
    Thread { name: &'static str, source: std::io::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("the transaction did not commit: {0}")]
    Commit(String),
    #[error("the storage thread has stopped")]
    Stopped,
    #[error("this board is full: it takes at most {0} participants")]
    BoardFull(usize),
    #[error(
        "another Hindsight node is using this database: a node alone (without --nats-url) takes it whole, and \
         the nodes of a cluster (with --nats-url) share it"
    )]
    InUse,
    #[error("the connection to the database is lost; it is tried again each second")]
    Lost,
    /// The write's fencing token is not the lease's current one: another node owns the board.
    #[error("this node no longer owns the board: another node took it over")]
    Fenced,
    #[error("cluster mode (leases) needs Postgres storage: set --database-url")]
    NeedsPostgres,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Request {
    CreateBoard {
        record: BoardRecord,
        snapshot: Vec<u8>,
        reply: Reply<()>,
    },
    Board {
        id: DocumentId,
        reply: Reply<Option<BoardRecord>>,
    },
    CreateParticipant {
        record: ParticipantRecord,
        desk: Vec<u8>,
        /// The most participants the board may have, this one included.
        max: usize,
        fence: Option<Fence>,
        reply: Reply<()>,
    },
    Load {
        doc: DocumentId,
        reply: Reply<Option<StoredDoc>>,
    },
    LoadMany {
        docs: Vec<DocumentId>,
        reply: Reply<Vec<(DocumentId, StoredDoc)>>,
    },
    LoadBoard {
        board: DocumentId,
        reply: Reply<Option<StoredBoard>>,
    },
    DeskOwner {
        desk: DocumentId,
        reply: Reply<Option<DocumentId>>,
    },
    /// A round trip to the database, for `/readyz`.
    Ping {
        reply: Reply<()>,
    },
    Lease {
        op: LeaseOp,
        reply: Reply<LeaseAnswer>,
    },
    Append {
        /// The board the documents belong to: its last activity is now.
        board: DocumentId,
        at_ms: i64,
        docs: Vec<(DocumentId, Vec<StoredChange>)>,
        fence: Option<Fence>,
        reply: Reply<()>,
    },
    /// Deletes boards (with their participants and every document) idle since before `before_ms`,
    /// except those in `keep`; answers with how many went.
    Expire {
        before_ms: i64,
        keep: Vec<DocumentId>,
        reply: Reply<usize>,
    },
    /// Deletes one board or team, its participants and every document of theirs.
    Delete {
        id: DocumentId,
        fence: Option<Fence>,
        reply: Reply<usize>,
    },
    /// The compactor's answer: a new snapshot and the changes it contains, or `None` on failure.
    Compacted {
        doc: DocumentId,
        result: Option<Compacted>,
        fence: Option<Fence>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// A handle to the storage thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    requests: mpsc::UnboundedSender<Request>,
    stats: Arc<StoreStats>,
}

/// What the writer has done since start, for `/metrics`.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Transactions committed (each a batch of writes).
    pub commits: AtomicU64,
    /// Writes those transactions held.
    pub writes: AtomicU64,
    /// Microseconds spent in them, commit included.
    pub commit_micros: AtomicU64,
    /// Transactions that did not commit.
    pub failed_commits: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (or creates) the SQLite database in `data_dir` and starts the writer and compactor
    /// threads.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir)
            .map_err(|source| StoreError::CreateDir { path: data_dir.display().to_string(), source })?;
        let backend = sqlite::Sqlite::open(&data_dir.join("hindsight.sqlite3"))?;
        Self::start(move || Ok(backend)).1
    }

    /// Connects to the Postgres database at `url` (creating the tables it lacks) and starts the
    /// writer and compactor threads. The client is a blocking one on the writer's own thread, so
    /// it connects there; this waits for it without blocking the runtime.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_as(url, postgres::Sharing::Alone).await
    }

    /// As [`connect`](Self::connect), for one node of a cluster: the database is shared with the
    /// other nodes, each board guarded by its lease (see [`Lease`]) instead of the whole database
    /// by one node's lock.
    pub async fn connect_shared(url: &str) -> Result<Self, StoreError> {
        Self::connect_as(url, postgres::Sharing::Cluster).await
    }

    async fn connect_as(url: &str, sharing: postgres::Sharing) -> Result<Self, StoreError> {
        let url = url.to_owned();
        let (opened, store) = Self::start(move || postgres::Postgres::connect(&url, sharing));
        opened.await.map_err(|_| StoreError::Stopped)??;
        store
    }

    /// Starts the threads; the backend opens on the writer's thread, which says how that went
    /// (the storage calls wait behind it either way).
    fn start<B: Backend>(
        open: impl FnOnce() -> Result<B, StoreError> + Send + 'static,
    ) -> (oneshot::Receiver<Result<(), StoreError>>, Result<Self, StoreError>) {
        // Unbounded on purpose: every request but the compactor's is a caller awaiting its answer
        // (so at most one per task, and tasks are bounded), and the compactor sends one result
        // per job, of which the writer gives it at most one per document at a time. A bound
        // would bound nothing more, and would make the compactor wait on the writer it feeds.
        let (requests, inbox) = mpsc::unbounded_channel();
        let (compact_tx, compact_rx) = std::sync::mpsc::channel();
        let (opened_tx, opened) = oneshot::channel();
        let results = requests.clone();
        let stats = Arc::new(StoreStats::default());
        let counted = Arc::clone(&stats);
        let started = (|| {
            thread::Builder::new()
                .name("hindsight-compactor".into())
                .spawn(move || compactor(compact_rx, results))
                .map_err(|source| StoreError::Thread { name: "compactor", source })?;
            thread::Builder::new()
                .name("hindsight-store".into())
                .spawn(move || match open() {
                    Ok(backend) => {
                        let _ = opened_tx.send(Ok(()));
                        let writer = Writer {
                            backend,
                            compact: compact_tx,
                            pending: HashMap::new(),
                            compacting: HashSet::new(),
                            stats: counted,
                        };
                        writer.run(inbox);
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                    }
                })
                .map_err(|source| StoreError::Thread { name: "storage", source })?;
            Ok(Self { requests, stats })
        })();
        (opened, started)
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(make(reply)).map_err(|_| StoreError::Stopped)?;
        answer.await.map_err(|_| StoreError::Stopped)?
    }

    /// Stores a new board with its first snapshot. Durable when it returns.
    pub async fn create_board(&self, record: BoardRecord, snapshot: Vec<u8>) -> Result<(), StoreError> {
        self.call(|reply| Request::CreateBoard { record, snapshot, reply }).await
    }

    /// The board's record, if the board exists.
    pub async fn board(&self, id: DocumentId) -> Result<Option<BoardRecord>, StoreError> {
        self.call(|reply| Request::Board { id, reply }).await
    }

    /// Stores a participant and their new desk. Durable when it returns.
    /// Fails with [`StoreError::BoardFull`] if the board has `max` participants already.
    /// In cluster mode, `fence` is the board's lease: the write is refused if it is not current.
    pub async fn create_participant(
        &self,
        record: ParticipantRecord,
        desk: Vec<u8>,
        max: usize,
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        self.call(|reply| Request::CreateParticipant { record, desk, max, fence, reply }).await
    }

    /// Everything stored for a document, or `None` if it was never stored.
    pub async fn load(&self, doc: DocumentId) -> Result<Option<StoredDoc>, StoreError> {
        self.call(|reply| Request::Load { doc, reply }).await
    }

    /// A board's document with every participant and the size of their desk, or `None` if there
    /// is no such board.
    pub async fn load_board(&self, board: DocumentId) -> Result<Option<StoredBoard>, StoreError> {
        self.call(|reply| Request::LoadBoard { board, reply }).await
    }

    /// Several documents at once; those never stored are left out.
    pub async fn load_many(&self, docs: Vec<DocumentId>) -> Result<Vec<(DocumentId, StoredDoc)>, StoreError> {
        self.call(|reply| Request::LoadMany { docs, reply }).await
    }

    /// Deletes every board idle (no change stored, no participant joined) since before
    /// `before_ms`, except the boards in `keep`, with all their documents. Returns how many went.
    pub async fn expire(&self, before_ms: i64, keep: Vec<DocumentId>) -> Result<usize, StoreError> {
        self.call(|reply| Request::Expire { before_ms, keep, reply }).await
    }

    /// Deletes a board or a team with every document of theirs. Durable when it returns.
    /// In cluster mode, `fence` is its lease: the delete is refused if it is not current.
    pub async fn delete(&self, id: DocumentId, fence: Option<Fence>) -> Result<(), StoreError> {
        self.call(|reply| Request::Delete { id, fence, reply }).await.map(drop)
    }

    /// The board a desk belongs to, if `desk` is a desk.
    pub async fn desk_owner(&self, desk: DocumentId) -> Result<Option<DocumentId>, StoreError> {
        self.call(|reply| Request::DeskOwner { desk, reply }).await
    }

    /// Stores accepted changes of documents of one board (the board and its desks) in one
    /// transaction. Durable (committed and synced to disk) when it returns. In cluster mode,
    /// `fence` is the board's lease: the write is refused if it is not current.
    pub async fn append_many(
        &self,
        board: DocumentId,
        docs: Vec<(DocumentId, Vec<StoredChange>)>,
        fence: Option<Fence>,
    ) -> Result<(), StoreError> {
        if docs.iter().all(|(_, changes)| changes.is_empty()) {
            return Ok(());
        }
        let at_ms = crate::clock::now_ms();
        self.call(|reply| Request::Append { board, at_ms, docs, fence, reply }).await
    }

    /// Asks the database about ownership leases (cluster mode; Postgres only).
    pub async fn lease(&self, op: LeaseOp) -> Result<LeaseAnswer, StoreError> {
        self.call(|reply| Request::Lease { op, reply }).await
    }

    /// Answers once the database has: whether this node reaches its storage.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(|reply| Request::Ping { reply }).await
    }

    /// What the writer has done since start.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Finishes every request already queued, checkpoints the write-ahead log and stops the thread.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Shutdown { reply }).is_ok() {
            let _ = done.await;
        }
    }
}

/// One write of a batch, as a backend applies it.
pub(crate) enum Write<'a> {
    CreateBoard {
        record: &'a BoardRecord,
        snapshot: &'a [u8],
    },
    /// Fails with [`StoreError::BoardFull`] if the board has `max` participants already, counted
    /// in the same transaction as the insert.
    CreateParticipant {
        record: &'a ParticipantRecord,
        desk: &'a [u8],
        max: usize,
        fence: Option<&'a Fence>,
    },
    /// The changes of a board's documents; the board's last activity becomes `at_ms`. Fails
    /// with [`StoreError::Fenced`] if `fence` is not the current lease.
    Append {
        board: DocumentId,
        at_ms: i64,
        docs: &'a [(DocumentId, Vec<StoredChange>)],
        fence: Option<&'a Fence>,
    },
    Expire {
        before_ms: i64,
        keep: &'a [DocumentId],
    },
    Delete {
        id: DocumentId,
        fence: Option<&'a Fence>,
    },
    /// A compacted snapshot replaces the old one and exactly the changes in `hashes`. A document
    /// that is gone (deleted while it was compacted) stays gone. In cluster mode it carries the
    /// lease its changes were stored under, and is skipped without one.
    Compacted {
        doc: DocumentId,
        snapshot: &'a [u8],
        hashes: &'a [[u8; 32]],
        fence: Option<&'a Fence>,
    },
}

impl Request {
    fn as_write(&self) -> Option<Write<'_>> {
        Some(match self {
            Request::CreateBoard { record, snapshot, .. } => Write::CreateBoard { record, snapshot },
            Request::CreateParticipant { record, desk, max, fence, .. } => {
                Write::CreateParticipant { record, desk, max: *max, fence: fence.as_ref() }
            }
            Request::Append { board, at_ms, docs, fence, .. } => {
                Write::Append { board: *board, at_ms: *at_ms, docs, fence: fence.as_ref() }
            }
            Request::Expire { before_ms, keep, .. } => Write::Expire { before_ms: *before_ms, keep },
            Request::Delete { id, fence, .. } => Write::Delete { id: *id, fence: fence.as_ref() },
            Request::Compacted { doc, result: Some((snapshot, hashes, _)), fence } => {
                Write::Compacted { doc: *doc, snapshot, hashes, fence: fence.as_ref() }
            }
            _ => return None,
        })
    }
}

/// A database the writer thread speaks to: SQL for the writer's requests, nothing else. Both
/// backends keep the same tables (see ARCHITECTURE.md, "Storage") and the same durability: a
/// write batch returns only once its transaction is committed and on disk.
pub(crate) trait Backend: Send + 'static {
    /// Applies `writes` in one transaction, each in a savepoint of its own so that one failing
    /// does not fail its neighbours. Returns each write's result in order (for `Expire` and
    /// `Delete`, how many boards went; fewer results if the transaction failed before it reached
    /// them) and, if the transaction did not commit, why: then every write failed.
    fn write(&mut self, writes: &[Write<'_>]) -> (Vec<Result<usize, StoreError>>, Option<String>);
    fn board(&mut self, id: DocumentId) -> Result<Option<BoardRecord>, StoreError>;
    /// A document's snapshot and changes with their hashes, or `None` if it was never stored.
    fn document(&mut self, doc: DocumentId) -> Result<Option<CompactionJob>, StoreError>;
    /// A board's participants, by join order, each with the bytes of their desk in storage.
    fn participants(&mut self, board: DocumentId) -> Result<Vec<(ParticipantRecord, usize)>, StoreError>;
    fn desk_owner(&mut self, desk: DocumentId) -> Result<Option<DocumentId>, StoreError>;
    /// A round trip to the database.
    fn ping(&mut self) -> Result<(), StoreError>;
    /// Answers a question about leases (cluster mode).
    fn lease(&mut self, _op: &LeaseOp) -> Result<LeaseAnswer, StoreError> {
        Err(StoreError::NeedsPostgres)
    }
    /// After the last write, before the thread ends.
    fn close(&mut self) {}
}

/// The state of the writer thread.
struct Writer<B> {
    backend: B,
    compact: std::sync::mpsc::Sender<(DocumentId, CompactionJob, Option<Fence>)>,
    /// What each document has stored beside its snapshot, as far as this run knows.
    pending: HashMap<DocumentId, Pending>,
    /// Documents whose compaction is under way.
    compacting: HashSet<DocumentId>,
    stats: Arc<StoreStats>,
}

impl<B: Backend> Writer<B> {
    fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Request>) {
        while let Some(first) = inbox.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < 1024 {
                match inbox.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            if let Some(reply) = self.handle(batch) {
                self.compact_before_exit();
                self.backend.close();
                let _ = reply.send(());
                return;
            }
        }
    }

    /// Handles one batch: all writes in one transaction, then the reads. Returns the shutdown
    /// reply if the batch asked to stop.
    fn handle(&mut self, batch: Vec<Request>) -> Option<oneshot::Sender<()>> {
        let mut reads = Vec::new();
        let mut writes = Vec::new();
        let mut shutdown = None;
        for request in batch {
            match request {
                Request::Board { .. }
                | Request::Load { .. }
                | Request::LoadMany { .. }
                | Request::LoadBoard { .. }
                | Request::DeskOwner { .. }
                | Request::Ping { .. }
                | Request::Lease { .. } => reads.push(request),
                Request::Shutdown { reply } => shutdown = Some(reply),
                write => writes.push(write),
            }
        }
        if !writes.is_empty() {
            self.write(writes);
        }
        for read in reads {
            match read {
                Request::Board { id, reply } => {
                    let _ = reply.send(self.backend.board(id));
                }
                Request::Load { doc, reply } => {
                    let result = self.read_doc(doc);
                    let _ = reply.send(result);
                }
                Request::LoadMany { docs, reply } => {
                    let loaded = docs
                        .into_iter()
                        .filter_map(|doc| self.read_doc(doc).map(|stored| stored.map(|s| (doc, s))).transpose())
                        .collect();
                    let _ = reply.send(loaded);
                }
                Request::LoadBoard { board, reply } => {
                    let _ = reply.send(self.read_board_with_desks(board));
                }
                Request::DeskOwner { desk, reply } => {
                    let _ = reply.send(self.backend.desk_owner(desk));
                }
                Request::Ping { reply } => {
                    let _ = reply.send(self.backend.ping());
                }
                Request::Lease { op, reply } => {
                    let _ = reply.send(self.backend.lease(&op));
                }
                _ => {}
            }
        }
        shutdown
    }

    fn write(&mut self, writes: Vec<Request>) {
        let planned: Vec<(usize, Write<'_>)> =
            writes.iter().enumerate().filter_map(|(i, request)| Some((i, request.as_write()?))).collect();
        let (indices, batch): (Vec<usize>, Vec<Write<'_>>) = planned.into_iter().unzip();
        let started = std::time::Instant::now();
        let (results, commit_error) = self.backend.write(&batch);
        let counter = if commit_error.is_some() { &self.stats.failed_commits } else { &self.stats.commits };
        counter.fetch_add(1, Ordering::Relaxed);
        self.stats.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.stats.commit_micros.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        drop(batch);
        // A request with nothing to write (a failed compaction) succeeded; a write the backend
        // gave no result for (its transaction failed first) did not.
        let mut outcomes: Vec<Result<usize, StoreError>> = writes.iter().map(|_| Ok(0)).collect();
        let mut results = results.into_iter();
        for i in indices {
            outcomes[i] = results.next().unwrap_or_else(|| Err(StoreError::Commit("not applied".into())));
        }
        for (write, result) in writes.into_iter().zip(outcomes) {
            let result = match &commit_error {
                Some(e) => Err(StoreError::Commit(e.clone())),
                None => result,
            };
            match write {
                Request::CreateBoard { reply, .. } | Request::CreateParticipant { reply, .. } => {
                    let _ = reply.send(result.map(drop));
                }
                Request::Expire { reply, .. } | Request::Delete { reply, .. } => {
                    let _ = reply.send(result);
                }
                Request::Append { docs, reply, fence, .. } => {
                    if result.is_ok() {
                        for (doc, changes) in &docs {
                            let pending = self.pending.entry(*doc).or_default();
                            pending.fence.clone_from(&fence);
                            pending.changes += changes.len();
                            pending.bytes += changes.iter().map(|c| c.bytes.len()).sum::<usize>();
                            self.maybe_compact(*doc);
                        }
                    }
                    let _ = reply.send(result.map(drop));
                }
                Request::Compacted { doc, result: compacted, .. } => {
                    self.compacting.remove(&doc);
                    if let (Ok(_), Some((snapshot, hashes, bytes))) = (result, compacted) {
                        let pending = self.pending.entry(doc).or_default();
                        pending.changes = pending.changes.saturating_sub(hashes.len());
                        pending.bytes = pending.bytes.saturating_sub(bytes);
                        pending.snapshot_bytes = snapshot.len();
                    }
                }
                _ => {}
            }
        }
    }

    /// At shutdown, compacts every document this run stored changes for, so that the next start
    /// loads one snapshot per document instead of replaying its changes. Inline: nothing else is
    /// waiting for the writer any more.
    fn compact_before_exit(&mut self) {
        // Documents the compactor is working on are compacted here too: its answer would come
        // after the writer stopped reading, and be dropped.
        let docs: Vec<(DocumentId, Option<Fence>)> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.changes > 0)
            .map(|(doc, pending)| (*doc, pending.fence.clone()))
            .collect();
        let mut writes = Vec::new();
        for (doc, fence) in docs {
            match self.backend.document(doc) {
                Ok(Some(job)) => writes.push(Request::Compacted { doc, result: compact(doc, &job), fence }),
                Ok(None) => {}
                Err(e) => tracing::warn!(doc = %doc.tag(), error = %e, "could not read a document for compaction"),
            }
        }
        if !writes.is_empty() {
            tracing::info!(documents = writes.len(), "compacted documents before exit");
            self.write(writes);
        }
    }

    /// Hands a document to the compactor once enough changes piled up beside its snapshot.
    fn maybe_compact(&mut self, doc: DocumentId) {
        if !self.pending.get(&doc).is_some_and(Pending::due) || self.compacting.contains(&doc) {
            return;
        }
        match self.backend.document(doc) {
            Ok(Some(job)) => {
                self.compacting.insert(doc);
                let fence = self.pending.get(&doc).and_then(|p| p.fence.clone());
                let _ = self.compact.send((doc, job, fence));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(doc = %doc.tag(), error = %e, "could not read a document for compaction"),
        }
    }

    /// Reads a document, and remembers how many changes sit beside its snapshot.
    fn read_doc(&mut self, doc: DocumentId) -> Result<Option<StoredDoc>, StoreError> {
        let stored = self.backend.document(doc)?.map(|job| StoredDoc {
            snapshot: job.snapshot,
            changes: job.changes.into_iter().map(|(_, bytes)| bytes).collect(),
        });
        if let Some(stored) = &stored {
            let bytes = stored.changes.iter().map(Vec::len).sum();
            let pending =
                Pending { changes: stored.changes.len(), bytes, snapshot_bytes: stored.snapshot.len(), fence: None };
            self.pending.insert(doc, pending);
        }
        Ok(stored)
    }

    fn read_board_with_desks(&mut self, board: DocumentId) -> Result<Option<StoredBoard>, StoreError> {
        let Some(record) = self.backend.board(board)? else {
            return Ok(None);
        };
        let Some(doc) = self.read_doc(board)? else {
            return Ok(None);
        };
        let participants = self.backend.participants(board)?;
        Ok(Some(StoredBoard { record, doc, participants }))
    }
}

/// Deletes, with `delete`, each of the `idle` boards (ids as stored) that is not in `keep`;
/// returns how many went. The retention rule, the same for every backend.
fn delete_idle(
    idle: Vec<Vec<u8>>,
    keep: &[DocumentId],
    mut delete: impl FnMut(&[u8]) -> Result<(), StoreError>,
) -> Result<usize, StoreError> {
    let mut deleted = 0;
    for board in idle.iter().filter(|board| !keep.iter().any(|k| k.as_bytes().as_slice() == board.as_slice())) {
        delete(board)?;
        deleted += 1;
    }
    Ok(deleted)
}

/// A board record from its stored columns; `None` if they are not what the store writes.
fn board_record(
    id: DocumentId,
    created_at_ms: i64,
    hash: Vec<u8>,
    kind: &str,
    team: Option<Vec<u8>>,
) -> Option<BoardRecord> {
    let team = team.and_then(|t| DocumentId::try_from(t.as_slice()).ok());
    Some(BoardRecord {
        id,
        created_at_ms,
        facilitator_key_hash: KeyHash(hash.try_into().ok()?),
        kind: DocKind::parse(kind),
        team,
    })
}

/// A compaction's result: the new snapshot, the hashes of the changes it holds (the rows it
/// replaces), and their bytes.
type Compacted = (Vec<u8>, Vec<[u8; 32]>, usize);

/// A document as stored, with the hash of every change: what the compactor works on.
pub(crate) struct CompactionJob {
    snapshot: Vec<u8>,
    changes: Vec<([u8; 32], Vec<u8>)>,
}

/// The compactor thread: turns a snapshot plus changes into one new snapshot, off the writer.
fn compactor(
    jobs: std::sync::mpsc::Receiver<(DocumentId, CompactionJob, Option<Fence>)>,
    results: mpsc::UnboundedSender<Request>,
) {
    while let Ok((doc, job, fence)) = jobs.recv() {
        if results.send(Request::Compacted { doc, result: compact(doc, &job), fence }).is_err() {
            return;
        }
    }
}

/// One new snapshot holding a stored snapshot and the changes beside it, with the hashes of
/// those changes (the rows it replaces); `None` if the stored bytes do not load.
fn compact(doc: DocumentId, job: &CompactionJob) -> Option<Compacted> {
    let compacted = (|| -> Result<Compacted, automerge::AutomergeError> {
        let mut merged = if job.snapshot.is_empty() {
            automerge::Automerge::new()
        } else {
            automerge::Automerge::load(&job.snapshot)?
        };
        let changes: Vec<u8> = job.changes.iter().flat_map(|(_, bytes)| bytes.iter().copied()).collect();
        merged.load_incremental(&changes)?;
        // Only the changes the new snapshot holds go: one still waiting for a dependency (which
        // `save` leaves out) keeps its row.
        let held: Vec<&([u8; 32], Vec<u8>)> = job
            .changes
            .iter()
            .filter(|(hash, _)| {
                automerge::ReadDoc::get_change_by_hash(&merged, &automerge::ChangeHash(*hash)).is_some()
            })
            .collect();
        let bytes = held.iter().map(|(_, bytes)| bytes.len()).sum();
        Ok((merged.save(), held.into_iter().map(|(hash, _)| *hash).collect(), bytes))
    })();
    match compacted {
        Ok(compacted) => Some(compacted),
        Err(e) => {
            tracing::warn!(doc = %doc.tag(), error = %e, "could not compact a document; its changes stay as they are");
            None
        }
    }
}
