//! Faults (issue 4): what the server acknowledged survives `kill -9`, and clients whose
//! connections are cut at random converge with nothing lost and nothing twice.
//!
//! - Twenty participants write drafts at once while the server is killed with SIGKILL at a random
//!   moment, three times over; after each restart every draft a writer saw acknowledged is on its
//!   desk (read by a fresh connection, which holds nothing of its own) and published exactly once.
//! - Eight participants write, edit, delete and group through a proxy that cuts their connections
//!   at random for a minute (`HINDSIGHT_FAULT_SECS`, default 60); they reconnect by themselves
//!   with what they hold and carry on. Then every desk is what its owner meant, every draft is
//!   published once, and everyone converges with a fresh viewer.
//! - Writers edit drafts until every document has crossed the compaction threshold several times,
//!   with SIGKILLs at random moments, so some land while a compaction runs; every acknowledged
//!   change and every board change a client received is back after each restart.
//!
//! The moments of the kills and the cuts come from a seed printed at the start of each test;
//! `HINDSIGHT_FAULT_SEED=<seed>` replays a schedule. The figures (changes survived per kill,
//! faults injected) are printed; `--nocapture` shows them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use automerge::{ChangeHash, ReadDoc};
use hindsight_server::store::{COMPACT_AFTER, Store};
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, random_token};
use hindsight_shared::schema::{Board, Draft, Phase, root_map};
use hindsight_tests::peer::now_ms;
use hindsight_tests::{
    ChangeOptions, FaultyProxy, Identity, Participant, Rng, ServerProcess, SyncPeer, Verdict, within,
};
use tokio::sync::mpsc;

/// The environment variable that replays a schedule of kills and cuts.
const SEED_VAR: &str = "HINDSIGHT_FAULT_SEED";

fn seed(test: &str) -> Rng {
    let seed = Rng::seed_from_env(SEED_VAR);
    eprintln!("{test}: seed {seed} (replay with {SEED_VAR}={seed})");
    Rng::new(seed)
}

/// How a well-behaved client commits to its own desk: its own actor, time 0.
fn desk_options() -> ChangeOptions {
    ChangeOptions { fresh_actor: false, ..ChangeOptions::default() }
}

/// The notes of a board, id -> text.
fn notes(board: &Board) -> BTreeMap<String, String> {
    board.notes.values().map(|n| (n.id.clone(), n.text.clone())).collect()
}

/// The notes the board must show once every draft is published: each draft of each desk, under
/// the id derived from its desk.
fn published_drafts(people: &[Participant]) -> BTreeMap<String, String> {
    people.iter().flat_map(|p| p.desk().drafts.into_values().map(|d| (p.note_id(&d.id), d.text))).collect()
}

/// Asserts that every note of `doc` was published once: one value under its key in `notes`, not
/// two concurrent ones (as two server actors publishing the same draft would leave).
fn assert_each_note_once(doc: &automerge::Automerge, when: &str) -> anyhow::Result<()> {
    let map = root_map(doc, "notes")?;
    for id in doc.keys(&map) {
        let values = doc.get_all(&map, id.as_str())?.len();
        assert_eq!(values, 1, "{when}: note {id} was published {values} times over");
    }
    Ok(())
}

/// Waits until the workers have seen `count` acknowledgements (each within the harness's
/// timeout of the one before), kills the server with SIGKILL,
/// and collects what each worker saw before it died.
async fn kill_after_acknowledgements<T: Send + 'static>(
    server: &mut ServerProcess,
    workers: Vec<tokio::task::JoinHandle<T>>,
    mut acks: mpsc::UnboundedReceiver<()>,
    count: u64,
) -> anyhow::Result<Vec<T>> {
    // Each acknowledgement within the harness's timeout, not all of them together: on a busy
    // machine 400 fsynced acknowledgements can take longer than one timeout, while a stalled
    // server still fails here.
    for n in 0..count {
        within(&format!("acknowledgement {} of {count} before the kill", n + 1), async {
            acks.recv().await.context("every worker stopped before the kill")
        })
        .await?;
    }
    server.kill9().await?;
    server.assert_no_panics();
    let mut seen = Vec::new();
    for worker in workers {
        seen.push(within("a worker to see the server die", async { Ok(worker.await?) }).await?);
    }
    Ok(seen)
}

// ---- kill -9 while 20 clients write ------------------------------------------------------------

const WRITERS: usize = 20;
const KILLS: usize = 3;
/// A writer's drafts per cycle at most: three cycles stay under the 200 drafts a desk takes.
const DRAFTS_PER_CYCLE: usize = 60;
const COLUMNS: [&str; 3] = ["start", "stop", "continue"];

/// What one writer saw between a start and a kill.
#[derive(Debug, Default)]
struct Written {
    /// Drafts the server acknowledged: id and text.
    acknowledged: Vec<(String, String)>,
    /// The draft sent last, whose acknowledgement never came (the server died first).
    in_flight: Option<(String, String)>,
    /// Refusals, which nothing here should cause.
    refused: Vec<String>,
}

/// Writes drafts one after another until the server dies, reporting each acknowledgement.
async fn write_until_killed(
    mut writer: Participant,
    index: usize,
    cycle: usize,
    acks: mpsc::UnboundedSender<()>,
) -> Written {
    let mut written = Written::default();
    for n in 0..DRAFTS_PER_CYCLE {
        let text = format!("writer {index}, cycle {cycle}, note {n}");
        let Ok((id, hash)) = writer.send_draft(COLUMNS[n % COLUMNS.len()], &text).await else { break };
        match writer.verdict(hash).await {
            Ok(Verdict::Accepted) => {
                written.acknowledged.push((id, text));
                let _ = acks.send(());
            }
            Ok(Verdict::Refused(reason)) => written.refused.push(reason),
            Err(_) => {
                written.in_flight = Some((id, text));
                break;
            }
        }
    }
    written
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_drafts_survive_kill_9_while_20_clients_write() -> anyhow::Result<()> {
    let mut rng = seed("kill -9 while 20 clients write");
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Kill -9 retro", "start-stop-continue").await?;
    // In Group every draft is published as soon as it arrives.
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    fay.set_phase(Phase::Group).await?;
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        writers.push(Participant::join(&server, board.board_id, &format!("Writer {i}")).await?);
    }
    let identities: Vec<Identity> = writers.iter().map(|w| w.identity().clone()).collect();
    // Every draft acknowledged so far, per writer, across all cycles.
    let mut acknowledged: Vec<Vec<(String, String)>> = vec![Vec::new(); WRITERS];

    for cycle in 1..=KILLS {
        let (tx, acks) = mpsc::unbounded_channel();
        let tasks: Vec<_> = writers
            .drain(..)
            .enumerate()
            .map(|(i, writer)| tokio::spawn(write_until_killed(writer, i, cycle, tx.clone())))
            .collect();
        drop(tx);
        let kill_after = rng.range(20..400);
        let written = kill_after_acknowledgements(&mut server, tasks, acks, kill_after).await?;

        server = ServerProcess::start(data.path()).await?;
        let mut lost = Vec::new();
        let (mut in_flight, mut in_flight_kept) = (0, 0);
        for (i, identity) in identities.iter().enumerate() {
            // A fresh connection holds nothing: what it finds on the desk came from the disk.
            let back = Participant::connect(&server.ws_url(), identity.clone()).await?;
            let desk = back.desk();
            assert!(written[i].refused.is_empty(), "writer {i}'s drafts were refused: {:?}", written[i].refused);
            acknowledged[i].extend(written[i].acknowledged.iter().cloned());
            for (id, text) in &acknowledged[i] {
                if desk.drafts.get(id).map(|d| &d.text) != Some(text) {
                    lost.push(text.clone());
                }
            }
            if let Some((id, _)) = &written[i].in_flight {
                in_flight += 1;
                in_flight_kept += usize::from(desk.drafts.contains_key(id));
            }
            writers.push(back);
        }
        let this_kill: usize = written.iter().map(|w| w.acknowledged.len()).sum();
        let expected = published_drafts(&writers);
        let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
        viewer.pump_until("every draft on the desks published", |b| notes(b) == expected).await?;
        assert_each_note_once(viewer.doc(), &format!("after kill {cycle}"))?;
        eprintln!(
            "kill -9 #{cycle} after {kill_after} acknowledgements: {} of {this_kill} drafts acknowledged since the \
             last start survived ({} in all, {} lost); {in_flight} drafts were in flight, {in_flight_kept} of them \
             reached the disk; {} notes published, each once",
            this_kill - lost.len().min(this_kill),
            acknowledged.iter().map(Vec::len).sum::<usize>(),
            lost.len(),
            expected.len(),
        );
        assert!(lost.is_empty(), "kill {cycle}: acknowledged drafts were lost: {lost:#?}");
        assert!(this_kill >= kill_after as usize, "the writers saw {this_kill} acknowledgements, fewer than awaited");
        viewer.close().await?;
    }

    // The facilitator's connection died with the first server; coming back, she still runs Group.
    let mut fay = Participant::connect(&server.ws_url(), fay.identity().clone()).await?;
    fay.set_phase(Phase::Vote).await?;
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

// ---- connections cut at random -----------------------------------------------------------------

/// How long the clients work while the proxy cuts their connections, unless
/// `HINDSIGHT_FAULT_SECS` says otherwise.
const DEFAULT_FAULT_SECS: u64 = 60;
const FLAKY_CLIENTS: usize = 8;
/// A client keeps at most this many drafts, well under the 200 a desk takes.
const MAX_LIVE_DRAFTS: usize = 60;
const FOUR_LS: [&str; 4] = ["liked", "learned", "lacked", "longed-for"];

/// What a client behind a flaky network did.
#[derive(Debug, Default, Clone, Copy)]
struct Activity {
    writes: usize,
    edits: usize,
    deletes: usize,
    /// Notes dropped onto other notes or clusters.
    moves: usize,
    /// Gestures a cut interrupted (the change was made locally and synced after reconnecting).
    interrupted: usize,
    reconnects: usize,
}

impl Activity {
    fn changes(&self) -> usize {
        self.writes + self.edits + self.deletes + self.moves
    }

    fn add(&mut self, other: &Activity) {
        self.writes += other.writes;
        self.edits += other.edits;
        self.deletes += other.deletes;
        self.moves += other.moves;
        self.interrupted += other.interrupted;
        self.reconnects += other.reconnects;
    }
}

/// A participant behind the proxy, with its own record of what it meant its desk to hold.
struct FlakyClient {
    participant: Participant,
    /// Why gestures failed, when it was not the connection dropping: the server said something
    /// a healthy sync never hears.
    anomalies: Vec<String>,
    ws_url: String,
    /// Draft id -> text: every write, edit and delete this client made, applied in order.
    intended: BTreeMap<String, String>,
    activity: Activity,
    rng: Rng,
}

impl FlakyClient {
    /// Works for `duration`: one gesture after another, each made locally first (as the browser
    /// does), sent, and awaited; a cut connection is reopened and the work goes on.
    async fn work(mut self, duration: Duration) -> anyhow::Result<Self> {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            if let Err(e) = self.gesture().await {
                let e = format!("{e:#}");
                if ["server sent", "unavailable", "unexpected message", "does not decode"].iter().any(|s| e.contains(s))
                {
                    self.anomalies.push(e);
                }
                self.activity.interrupted += 1;
                self.reconnect().await?;
            }
        }
        Ok(self)
    }

    /// Opens a new connection through the proxy, retrying while the proxy cuts the attempts.
    async fn reconnect(&mut self) -> anyhow::Result<()> {
        let mut failures = Vec::new();
        while failures.len() < 20 {
            self.activity.reconnects += 1;
            match self.participant.reconnect(&self.ws_url).await {
                Ok(()) => return Ok(()),
                Err(e) => failures.push(format!("{e:#}")),
            }
            // The browser's backoff, shortened.
            tokio::time::sleep(Duration::from_millis(20 * failures.len() as u64)).await;
        }
        anyhow::bail!("{} could not reconnect: {failures:#?}", self.participant.name())
    }

    /// Makes one change and waits until the server stored it.
    async fn gesture(&mut self) -> anyhow::Result<()> {
        let desk = self.participant.desk_id();
        let name = self.participant.name().to_owned();
        let n = self.activity.changes();
        let roll = self.rng.range(0..100);
        let drafts: Vec<String> = self.intended.keys().cloned().collect();
        if roll < 40 && drafts.len() < MAX_LIVE_DRAFTS || drafts.is_empty() {
            let column = FOUR_LS[self.rng.pick(FOUR_LS.len())];
            let draft = Draft {
                id: random_token::<9>(),
                column: column.into(),
                text: format!("{name}: note {n}"),
                created_at: now_ms(),
            };
            self.participant.peer().commit_local(desk, &desk_options(), |tx| Ok(edit::add_draft(tx, &draft)?))?;
            self.intended.insert(draft.id, draft.text);
            self.activity.writes += 1;
        } else if roll < 65 {
            let id = &drafts[self.rng.pick(drafts.len())];
            let text = format!("{name}: edit {n}");
            self.participant
                .peer()
                .commit_local(desk, &desk_options(), |tx| Ok(edit::set_draft_text(tx, id, &text)?))?;
            self.intended.insert(id.clone(), text);
            self.activity.edits += 1;
        } else if roll < 80 {
            let id = &drafts[self.rng.pick(drafts.len())];
            self.participant.peer().commit_local(desk, &desk_options(), |tx| Ok(edit::delete_draft(tx, id)?))?;
            self.intended.remove(id);
            self.activity.deletes += 1;
        } else {
            return self.move_a_note().await;
        }
        self.participant.peer().send_sync(desk).await?;
        self.participant.wait_acknowledged().await
    }

    /// Drops a random note onto another note or a cluster, as anyone may in Group.
    async fn move_a_note(&mut self) -> anyhow::Result<()> {
        let board = self.participant.board();
        let notes: Vec<&String> = board.notes.keys().collect();
        let clusters: Vec<&String> = board.clusters.keys().collect();
        if notes.len() < 2 {
            return self.participant.wait_acknowledged().await;
        }
        let dragged = notes[self.rng.pick(notes.len())].clone();
        let target = if !clusters.is_empty() && self.rng.chance(50) {
            clusters[self.rng.pick(clusters.len())].clone()
        } else {
            notes[self.rng.pick(notes.len())].clone()
        };
        let cluster = random_token::<9>();
        let board_id = self.participant.board_id();
        let options = ChangeOptions::default();
        let made = self
            .participant
            .peer()
            .send_change_if_any(board_id, &options, |tx| Ok(edit::group(tx, &board, &dragged, &target, &cluster)?))
            .await?;
        if made.is_some() {
            self.activity.moves += 1;
        }
        self.participant.wait_acknowledged().await
    }

    /// After the cuts stopped: reconnects if the last cut left it without a connection, and
    /// syncs until the server has stored everything it holds.
    async fn settle(&mut self) -> anyhow::Result<()> {
        for _ in 0..5 {
            if self.participant.wait_acknowledged().await.is_ok() {
                return Ok(());
            }
            self.reconnect().await?;
        }
        anyhow::bail!("{} never got its changes acknowledged after the cuts stopped", self.participant.name())
    }

    /// Syncs until the board replica has exactly `heads`. A client that sat idle while the others
    /// settled may find its connection closed by the server's idle timeout (no pong read for three
    /// pings), as a browser tab would; like the browser, it reconnects and syncs again.
    async fn converge(&mut self, heads: &[ChangeHash]) -> anyhow::Result<()> {
        let mut tries = 0;
        loop {
            match self.participant.pump_until_heads(heads).await {
                Ok(()) => return Ok(()),
                Err(e) if tries < 1 => {
                    eprintln!("{} reconnects to converge: {e:#}", self.participant.name());
                    tries += 1;
                    self.reconnect().await?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_whose_connections_are_cut_at_random_converge_with_nothing_lost_or_duplicated() -> anyhow::Result<()> {
    let mut rng = seed("connections cut at random");
    let secs = std::env::var("HINDSIGHT_FAULT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_FAULT_SECS);
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Flaky network retro", "4ls").await?;
    let mut proxy = FaultyProxy::start(&server).await?;

    // Everyone joins through the proxy; Fay opens Group, where every draft is published at once
    // and anyone may move notes into clusters.
    let mut fay = Participant::join_as_facilitator(&proxy, &board, "Fay").await?;
    fay.set_phase(Phase::Group).await?;
    let mut people = vec![fay];
    for i in 1..FLAKY_CLIENTS {
        people.push(Participant::join(&proxy, board.board_id, &format!("Flaky {i}")).await?);
    }
    let clients: Vec<FlakyClient> = people
        .into_iter()
        .map(|participant| FlakyClient {
            participant,
            anomalies: Vec::new(),
            ws_url: hindsight_tests::Endpoint::ws_url(&proxy),
            intended: BTreeMap::new(),
            activity: Activity::default(),
            rng: Rng::new(rng.next_u64()),
        })
        .collect();

    proxy.start_cutting(Duration::from_millis(500)..Duration::from_millis(3000), rng.next_u64());
    let started = Instant::now();
    let tasks: Vec<_> =
        clients.into_iter().map(|client| tokio::spawn(client.work(Duration::from_secs(secs)))).collect();
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await??);
    }
    proxy.stop_cutting();
    let worked = started.elapsed();
    for client in &mut clients {
        client.settle().await?;
    }

    // Every desk is what its owner meant, as a fresh connection straight to the server reads it.
    let mut total = Activity::default();
    let mut fresh = Vec::new();
    for client in &clients {
        total.add(&client.activity);
        let name = client.participant.name();
        assert!(client.anomalies.is_empty(), "{name}'s sync broke other than by cuts: {:#?}", client.anomalies);
        let local: BTreeMap<String, String> =
            client.participant.desk().drafts.into_values().map(|d| (d.id, d.text)).collect();
        assert_eq!(local, client.intended, "{name}'s own replica holds what it meant to write");
        let desk_refusals = client
            .participant
            .notices()
            .iter()
            .filter(|(doc, n)| *doc == client.participant.desk_id() && is_refusal(n));
        assert_eq!(desk_refusals.count(), 0, "{name}'s desk changes are all allowed in Group");
        let back = Participant::connect(&server.ws_url(), client.participant.identity().clone()).await?;
        let stored: BTreeMap<String, String> = back.desk().drafts.into_values().map(|d| (d.id, d.text)).collect();
        assert_eq!(stored, client.intended, "{name}'s desk on the server: no draft lost, none resurrected");
        assert_eq!(back.desk_heads(), client.participant.desk_heads(), "{name}'s desk converged");
        fresh.push(back);
    }

    // Every draft is published exactly once, and everyone converges on one board.
    let expected = published_drafts(&fresh);
    let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    viewer.pump_until("every draft published", |b| notes(b) == expected).await?;
    assert_each_note_once(viewer.doc(), "after the cuts")?;
    let final_board = viewer.board();
    for note in final_board.notes.values() {
        if let Some(cluster) = &note.cluster {
            assert!(final_board.clusters.contains_key(cluster), "note {} is in a cluster that does not exist", note.id);
        }
    }
    let heads = viewer.heads();
    for client in &mut clients {
        client.converge(&heads).await?;
        assert_eq!(client.participant.board(), final_board);
    }
    let refused_moves: usize = clients.iter().map(|c| c.participant.refusals()).sum();
    eprintln!(
        "connections cut at random for {worked:.1?}: {} faults injected into {} connections; {} changes made \
         ({} writes, {} edits, {} deletes, {} moves, {refused_moves} moves refused in races), {} gestures \
         interrupted, {} reconnection attempts; nothing lost: {} drafts on {FLAKY_CLIENTS} desks, {} notes \
         published once each, {} clusters",
        proxy.faults(),
        proxy.accepted(),
        total.changes(),
        total.writes,
        total.edits,
        total.deletes,
        total.moves,
        total.interrupted,
        total.reconnects,
        expected.len(),
        final_board.notes.len(),
        final_board.clusters.len(),
    );
    let least = secs / 4;
    assert!(proxy.faults() >= least, "only {} faults injected in {secs} s (at least {least} expected)", proxy.faults());
    assert!(total.interrupted > 0, "no cut ever interrupted a client");

    drop(proxy);
    server.stop().await?;
    server.assert_no_panics();
    Ok(())
}

fn is_refusal(notice: &hindsight_shared::presence::Notice) -> bool {
    matches!(notice, hindsight_shared::presence::Notice::Refused { .. })
}

// ---- compaction under crashes ------------------------------------------------------------------

const EDITORS: usize = 3;
const COMPACTION_KILLS: usize = 4;
const DRAFTS_PER_EDITOR: usize = 8;

/// What one editor saw between a start and a kill.
#[derive(Debug, Default)]
struct Edited {
    /// Desk changes the server acknowledged.
    acknowledged: Vec<ChangeHash>,
    /// The board's heads as the editor last received them: the server sends only what it stored.
    board_heads: Vec<ChangeHash>,
    refused: Vec<String>,
}

/// Edits drafts one change at a time until the server dies, reporting each acknowledgement.
async fn edit_until_killed(mut editor: Participant, index: usize, acks: mpsc::UnboundedSender<()>) -> Edited {
    let drafts: Vec<String> = editor.desk().drafts.into_keys().collect();
    let mut edited = Edited::default();
    for n in 0.. {
        let (id, text) = (&drafts[n % drafts.len()], format!("editor {index}, edit {n}"));
        let Ok(hash) = editor.send_desk_change(|tx| Ok(edit::set_draft_text(tx, id, &text)?)).await else { break };
        match editor.verdict(hash).await {
            Ok(Verdict::Accepted) => {
                edited.acknowledged.push(hash);
                let _ = acks.send(());
            }
            Ok(Verdict::Refused(reason)) => edited.refused.push(reason),
            Err(_) => break,
        }
    }
    edited.board_heads = editor.heads();
    edited
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_changes_survive_kills_while_documents_are_compacted() -> anyhow::Result<()> {
    let mut rng = seed("compaction under crashes");
    let data = tempfile::tempdir()?;
    let mut server = ServerProcess::start(data.path()).await?;
    let board = server.create_board("Compaction retro", "start-stop-continue").await?;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    // In Group every edit of a draft is published at once: the board grows as fast as the desks.
    fay.set_phase(Phase::Group).await?;
    let mut editors = Vec::new();
    for i in 0..EDITORS {
        let mut editor = Participant::join(&server, board.board_id, &format!("Editor {i}")).await?;
        for n in 0..DRAFTS_PER_EDITOR {
            editor.write(COLUMNS[n % COLUMNS.len()], &format!("editor {i}, draft {n}")).await?;
        }
        editors.push(editor);
    }
    let identities: Vec<Identity> = editors.iter().map(|e| e.identity().clone()).collect();
    let mut acknowledged: Vec<Vec<ChangeHash>> = vec![Vec::new(); EDITORS];

    for cycle in 1..=COMPACTION_KILLS {
        let (tx, acks) = mpsc::unbounded_channel();
        let tasks: Vec<_> = editors
            .drain(..)
            .enumerate()
            .map(|(i, editor)| tokio::spawn(edit_until_killed(editor, i, tx.clone())))
            .collect();
        drop(tx);
        // Each editor makes about a third of these: a desk crosses the threshold every cycle or two.
        let kill_after = rng.range(250..700);
        let edited = kill_after_acknowledgements(&mut server, tasks, acks, kill_after).await?;

        server = ServerProcess::start(data.path()).await?;
        let mut lost = 0;
        for (i, identity) in identities.iter().enumerate() {
            assert!(edited[i].refused.is_empty(), "editor {i}'s edits were refused: {:?}", edited[i].refused);
            acknowledged[i].extend(edited[i].acknowledged.iter().copied());
            let back = Participant::connect(&server.ws_url(), identity.clone()).await?;
            lost += acknowledged[i].iter().filter(|h| back.desk_doc().get_change_by_hash(h).is_none()).count();
            editors.push(back);
        }
        let received: BTreeSet<ChangeHash> = edited.iter().flat_map(|e| e.board_heads.iter().copied()).collect();
        let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
        let all_there = |peer: &SyncPeer| received.iter().all(|h| peer.doc().get_change_by_hash(h).is_some());
        viewer.pump("the board changes the editors had received before the kill (some are lost)", all_there).await?;
        let this_kill: usize = edited.iter().map(|e| e.acknowledged.len()).sum();
        eprintln!(
            "kill -9 #{cycle} (compaction) after {kill_after} acknowledgements: {} of {this_kill} desk changes \
             acknowledged since the last start survived ({} in all, {lost} lost); the board the editors had \
             received survived ({} changes)",
            this_kill.saturating_sub(lost),
            acknowledged.iter().map(Vec::len).sum::<usize>(),
            viewer.doc().get_changes(&[]).len(),
        );
        assert_eq!(lost, 0, "kill {cycle}: acknowledged desk changes were lost");
        viewer.close().await?;
    }

    // The documents crossed the compaction threshold, and were compacted: fewer changes are
    // stored beside their snapshots than they hold.
    let mut documents: Vec<(String, DocumentId, usize)> = vec![("board".into(), board.board_id, 0)];
    for editor in &editors {
        documents.push((editor.name().to_owned(), editor.desk_id(), editor.desk_doc().get_changes(&[]).len()));
    }
    let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    // A viewer has nothing to acknowledge: this waits until it holds the server's heads.
    viewer.wait_acknowledged().await?;
    documents[0].2 = viewer.doc().get_changes(&[]).len();
    server.stop().await?;
    server.assert_no_panics();
    let store = Store::open(data.path())?;
    let mut compacted = 0;
    for (name, doc, total) in &documents {
        let stored = store.load(*doc).await?.with_context(|| format!("{name} is not stored"))?;
        eprintln!("{name}: {total} changes, {} of them stored beside the snapshot", stored.changes.len());
        assert!(*total > COMPACT_AFTER, "{name} never crossed the compaction threshold ({total} changes)");
        compacted += usize::from(stored.changes.len() < *total);
    }
    store.close().await;
    assert!(compacted > 0, "no document was ever compacted");
    Ok(())
}
