//! Storage (issue 16): the same tests against both backends, SQLite in a data directory and a
//! real Postgres started by the test, through the server's `Store`: records, participants and
//! their bound, changes stored once, desks' sizes, deletion and retention, compaction; and the
//! server itself on Postgres through a `kill -9` and through a restart of Postgres.

use std::collections::BTreeSet;

use anyhow::Context;
use automerge::transaction::Transactable;
use hindsight_server::key::KeyHash;
use hindsight_server::store::{
    BoardRecord, COMPACT_AFTER, DocKind, ParticipantRecord, Store, StoreError, StoredChange,
};
use hindsight_shared::ids::DocumentId;
use hindsight_tests::ServerProcess;
use hindsight_tests::postgres::Postgres;

/// One store of each kind, empty. The Postgres server lives as long as the returned value.
struct Backends {
    sqlite: tempfile::TempDir,
    postgres: Postgres,
}

impl Backends {
    async fn start() -> anyhow::Result<Self> {
        Ok(Self { sqlite: tempfile::tempdir()?, postgres: Postgres::start().await? })
    }

    /// A fresh store of each kind, named, and how to open it again (the same data).
    async fn open(&self, name: &str) -> anyhow::Result<Vec<(&'static str, Store, Reopen)>> {
        let dir = self.sqlite.path().join(name);
        let url = self.postgres.create_database(name).await?;
        Ok(vec![
            ("sqlite", Store::open(&dir)?, Reopen::Sqlite(dir)),
            ("postgres", Store::connect(&url).await?, Reopen::Postgres(url)),
        ])
    }
}

enum Reopen {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Reopen {
    async fn open(&self) -> Result<Store, StoreError> {
        match self {
            Reopen::Sqlite(dir) => Store::open(dir),
            Reopen::Postgres(url) => Store::connect(url).await,
        }
    }
}

fn record(created_at_ms: i64, team: Option<DocumentId>) -> BoardRecord {
    BoardRecord {
        id: DocumentId::random(),
        created_at_ms,
        facilitator_key_hash: KeyHash::of("a facilitator key"),
        kind: DocKind::Board,
        team,
    }
}

fn participant(board: DocumentId, id: &str, joined_at_ms: i64) -> ParticipantRecord {
    ParticipantRecord { board, id: id.into(), name: format!("{id}'s name"), desk: DocumentId::random(), joined_at_ms }
}

fn change(n: u8, len: usize) -> StoredChange {
    StoredChange { hash: [n; 32], bytes: vec![n; len] }
}

#[tokio::test]
async fn each_store_keeps_records_participants_and_changes_and_deletes_them_whole() -> anyhow::Result<()> {
    let backends = Backends::start().await?;
    for (name, store, _) in backends.open("records").await? {
        let team = DocumentId::random();
        let board = record(1_000, Some(team));
        store.create_board(board.clone(), b"board snapshot".to_vec()).await?;
        assert_eq!(store.board(board.id).await?, Some(board.clone()), "{name}: the record");
        assert_eq!(store.board(DocumentId::random()).await?, None, "{name}: an unknown board");

        // At most two participants: the third is refused, and nothing of theirs is stored.
        let (ann, bob, cy) = (
            participant(board.id, "ann", 2_000),
            participant(board.id, "bob", 3_000),
            participant(board.id, "cy", 4_000),
        );
        store.create_participant(ann.clone(), b"ann's desk".to_vec(), 2, None).await?;
        store.create_participant(bob.clone(), b"bob's desk".to_vec(), 2, None).await?;
        let full = store.create_participant(cy.clone(), b"cy's desk".to_vec(), 2, None).await;
        assert!(matches!(full, Err(StoreError::BoardFull(2))), "{name}: {full:?}");
        assert!(store.load(cy.desk).await?.is_none(), "{name}: a refused participant's desk is not stored");
        assert_eq!(store.desk_owner(ann.desk).await?, Some(board.id), "{name}");
        assert_eq!(store.desk_owner(board.id).await?, None, "{name}: a board is not a desk");

        // Changes of a board's documents in one call; a change stored twice is stored once.
        let docs = vec![(board.id, vec![change(1, 10), change(2, 20)]), (ann.desk, vec![change(3, 30)])];
        store.append_many(board.id, docs.clone(), None).await?;
        store.append_many(board.id, vec![(board.id, vec![change(2, 20)])], None).await?;
        let stored = store.load(board.id).await?.context("the board's document")?;
        assert_eq!(stored.snapshot, b"board snapshot", "{name}");
        let changes: BTreeSet<Vec<u8>> = stored.changes.into_iter().collect();
        assert_eq!(changes, BTreeSet::from([vec![1; 10], vec![2; 20]]), "{name}: each change once");

        let loaded = store.load_board(board.id).await?.context("the board")?;
        assert_eq!(loaded.record, board, "{name}");
        let sizes: Vec<(String, usize)> = loaded.participants.iter().map(|(p, bytes)| (p.id.clone(), *bytes)).collect();
        assert_eq!(
            sizes,
            [("ann".to_owned(), b"ann's desk".len() + 30), ("bob".to_owned(), b"bob's desk".len())],
            "{name}"
        );
        assert_eq!(loaded.participants[0].0, ann, "{name}");
        let many = store.load_many(vec![ann.desk, bob.desk, DocumentId::random()]).await?;
        assert_eq!(many.len(), 2, "{name}: the unknown document is left out");

        // Deleting a board takes its participants and every document of theirs.
        store.delete(board.id, None).await?;
        assert_eq!(store.board(board.id).await?, None, "{name}");
        for doc in [board.id, ann.desk, bob.desk] {
            assert!(store.load(doc).await?.is_none(), "{name}: a document of a deleted board");
        }
        assert_eq!(store.desk_owner(ann.desk).await?, None, "{name}");

        // Retention: the idle board goes, the recent one and the kept one stay.
        let now = hindsight_server::clock::now_ms();
        let (idle, kept, recent) = (record(1_000, None), record(1_000, None), record(now, None));
        for board in [&idle, &kept, &recent] {
            store.create_board(board.clone(), Vec::new()).await?;
        }
        assert_eq!(store.expire(now - 60_000, vec![kept.id]).await?, 1, "{name}");
        assert_eq!(store.board(idle.id).await?, None, "{name}");
        assert!(store.board(kept.id).await?.is_some() && store.board(recent.id).await?.is_some(), "{name}");
        store.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn each_store_compacts_a_document_and_loads_it_whole() -> anyhow::Result<()> {
    let backends = Backends::start().await?;
    for (name, store, reopen) in backends.open("compaction").await? {
        let mut doc = automerge::Automerge::new();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "title", "Compacted")?;
        tx.commit();
        let board = record(1_000, None);
        store.create_board(board.clone(), doc.save()).await?;
        let total = COMPACT_AFTER + 44;
        for i in 0..total {
            let mut tx = doc.transaction();
            tx.put(automerge::ROOT, "count", i as i64)?;
            tx.commit();
            let change = doc.get_last_local_change().context("a change")?;
            let stored = StoredChange { hash: change.hash().0, bytes: change.raw_bytes().to_vec() };
            store.append_many(board.id, vec![(board.id, vec![stored])], None).await?;
        }
        store.close().await;

        let store = reopen.open().await?;
        let stored = store.load(board.id).await?.context("the document")?;
        assert!(
            stored.changes.len() < total,
            "{name}: {} of {total} changes still beside the snapshot",
            stored.changes.len()
        );
        let mut loaded = automerge::Automerge::load(&stored.snapshot)?;
        loaded.load_incremental(&stored.changes.concat())?;
        assert_eq!(loaded.get_heads(), doc.get_heads(), "{name}: the compacted document is the whole document");
        store.close().await;
    }
    Ok(())
}

/// The server on Postgres: a retro under way survives `kill -9`, and nothing is in the data
/// directory; a database it cannot reach stops it with a clear error that shows no password.
#[tokio::test]
async fn a_retro_on_postgres_survives_kill_9_and_an_unreachable_database_is_a_clear_error() -> anyhow::Result<()> {
    let postgres = Postgres::start().await?;
    let url = postgres.create_database("hindsight").await?;
    let data = tempfile::tempdir()?;
    let flags = ["--database-url", url.as_str()];
    let mut first = ServerProcess::start_with(data.path(), &flags).await?;
    let board = first.create_board("Quarterly retro", "4ls").await?;
    let retro = crate::restart::retro_under_way(&first, &board).await?;
    first.kill9().await?;
    first.assert_no_panics();
    assert!(!data.path().join("hindsight.sqlite3").exists(), "the board went to SQLite, not Postgres");

    let mut second = ServerProcess::start_with(data.path(), &flags).await?;
    crate::restart::assert_retro_is_back(&second, &retro).await?;
    // One node per database until boards have owners: a second is refused while this one serves.
    let other = tempfile::tempdir()?;
    let refused = ServerProcess::start_with(other.path(), &flags).await;
    let error = format!("{:#}", refused.err().context("a second node on the same database started")?);
    assert!(error.contains("another Hindsight node is using this database"), "{error}");
    second.stop().await?;
    second.assert_no_panics();

    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let unreachable = format!("postgres://hindsight:s3cret-password@127.0.0.1:{closed}/hindsight");
    let failed = ServerProcess::start_with(data.path(), &["--database-url", &unreachable]).await;
    let error = format!("{:#}", failed.err().context("a server without its database started")?);
    assert!(error.contains("could not open storage in Postgres"), "{error}");
    assert!(!error.contains("s3cret-password"), "the password is in the log: {error}");
    Ok(())
}

/// Polls `/readyz` until it answers `status` (bounded by the harness's timeout); its body.
async fn readyz_until(server: &ServerProcess, status: u16) -> anyhow::Result<serde_json::Value> {
    let url = format!("{}/readyz", server.http_url());
    hindsight_tests::within(&format!("/readyz to answer {status}"), async {
        loop {
            let answer = hindsight_tests::http::get(&url).await?;
            if answer.status == status {
                return answer.json::<serde_json::Value>();
            }
            // Readiness changes with no event to wait on: each poll is a real round trip.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
}

/// Postgres restarts under a running server: `/readyz` says so meanwhile, a change made then is
/// never acknowledged (and its client keeps it), and once the database is back the server
/// reconnects by itself, the client's change is stored, and nothing acknowledged is lost.
#[tokio::test]
async fn a_server_on_postgres_rides_out_a_database_restart_and_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut postgres = Postgres::start().await?;
    let url = postgres.create_database("hindsight").await?;
    let data = tempfile::tempdir()?;
    let flags = ["--database-url", url.as_str()];
    let mut server = ServerProcess::start_with(data.path(), &flags).await?;
    assert_eq!(readyz_until(&server, 200).await?, serde_json::json!({ "ready": true, "storage": "ok" }));
    let board = server.create_board("Database day", "4ls").await?;
    let mut ann = hindsight_tests::Participant::join(&server, board.board_id, "Ann").await?;
    ann.write("liked", "Before the restart").await?;

    postgres.stop().await?;
    let down = readyz_until(&server, 503).await?;
    assert_eq!(down["storage"], "unreachable", "{down}");
    let (_, during) = ann.send_draft("learned", "While the database was down").await?;

    postgres.start_again().await?;
    readyz_until(&server, 200).await?;
    // As the browser does: whatever the server never acknowledged is sent again on reconnect.
    ann.reconnect(&server.ws_url()).await?;
    ann.wait_acknowledged().await?;
    ann.write("lacked", "After the restart").await?;
    let metrics = hindsight_tests::http::get(&format!("{}/metrics", server.http_url())).await?.text();
    assert!(metrics.contains("\nhindsight_store_commits_total "), "{metrics}");

    server.kill9().await?;
    server.assert_no_panics();
    let mut again = ServerProcess::start_with(data.path(), &flags).await?;
    let back = hindsight_tests::Participant::connect(&again.ws_url(), ann.identity().clone()).await?;
    let texts: BTreeSet<String> = back.desk().drafts.into_values().map(|d| d.text).collect();
    assert_eq!(
        texts,
        BTreeSet::from(["Before the restart", "While the database was down", "After the restart"].map(String::from)),
        "every change Ann made, acknowledged once the database was back ({during:?} among them)"
    );
    again.stop().await?;
    again.assert_no_panics();
    Ok(())
}

/// Leases and their fencing tokens, on Postgres, between two nodes' stores: a live lease is not
/// taken (its holder, asking again, keeps its epoch); an expired one is, under a higher epoch; the
/// old holder's writes (changes and joins) are then refused in their own transaction, and the new
/// holder's go through.
#[tokio::test]
async fn a_stale_owners_writes_are_refused_by_the_fencing_token() -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::time::Duration;

    use hindsight_server::store::{Fence, LeaseAnswer, LeaseOp};

    let postgres = Postgres::start().await?;
    let url = postgres.create_database("fencing").await?;
    let (a, b) = (Store::connect_shared(&url).await?, Store::connect_shared(&url).await?);
    let board = record(1_000, None);
    a.create_board(board.clone(), b"the board".to_vec()).await?;
    let take = |node: &str, ttl_ms: u64| LeaseOp::Take {
        key: board.id,
        node: node.to_owned(),
        ttl: Duration::from_millis(ttl_ms),
    };
    let holder = |answer: LeaseAnswer| match answer {
        LeaseAnswer::Holders(holders) => holders.into_iter().next().context("a holder"),
        other => anyhow::bail!("{other:?}"),
    };

    let first = holder(a.lease(take("node-a", 300)).await?)?;
    assert_eq!((first.node.as_str(), first.epoch, first.live), ("node-a", 1, true));
    let again = holder(a.lease(take("node-a", 300)).await?)?;
    assert_eq!(again.epoch, 1, "a node locating its own live lease again fenced itself");
    let refused = holder(b.lease(take("node-b", 60_000)).await?)?;
    assert_eq!(refused.node, "node-a", "a live lease was taken");
    let fence_a = Fence { key: board.id, node: Arc::from("node-a"), epoch: first.epoch };
    a.append_many(board.id, vec![(board.id, vec![change(1, 10)])], Some(fence_a.clone())).await?;

    // Node A stalls past its lease; node B takes the board over.
    let second = hindsight_tests::within("the lease to expire and be taken", async {
        loop {
            let holder = holder(b.lease(take("node-b", 60_000)).await?)?;
            if holder.node == "node-b" {
                return Ok(holder);
            }
            // The lease expires by the database's clock: each try is a real round trip.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await?;
    assert_eq!(second.epoch, 2);
    let stale = a.append_many(board.id, vec![(board.id, vec![change(2, 10)])], Some(fence_a.clone())).await;
    assert!(matches!(stale, Err(StoreError::Fenced)), "{stale:?}");
    let joined = a.create_participant(participant(board.id, "late", 2_000), b"desk".to_vec(), 10, Some(fence_a)).await;
    assert!(matches!(joined, Err(StoreError::Fenced)), "{joined:?}");
    let fence_b = Fence { key: board.id, node: Arc::from("node-b"), epoch: second.epoch };
    b.append_many(board.id, vec![(board.id, vec![change(3, 10)])], Some(fence_b)).await?;

    let stored = b.load(board.id).await?.context("the board")?;
    assert_eq!(stored.changes.len(), 2, "the stale owner's change was stored");
    assert!(b.load_board(board.id).await?.context("the board")?.participants.is_empty());
    a.close().await;
    b.close().await;
    Ok(())
}
