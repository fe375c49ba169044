//! The rules of a retro, enforced by the server (issue 3), one by one over real connections. For
//! every rule, a change that breaks it is refused, and each time three things are asserted: the
//! server refused it (a `refused` notice to its sender), the board is unchanged (a bystander's
//! copy keeps its heads), and nobody else received anything of it (the bystander's frames since
//! are only the barrier the test sent). Every rule also has its allowed counterpart, so no test
//! passes merely because everything is refused.
//!
//! The cast: Fay facilitates, Ann tries things, Bob is the bystander who watches his frames, and
//! a viewer (a connection that synced no desk) tries things too.

use anyhow::Context;
use automerge::ScalarValue;
use automerge::transaction::{Transactable, Transaction};
use hindsight_shared::edit;
use hindsight_shared::protocol::WireMessage;
use hindsight_shared::schema::{self, ActionItem, Draft, MAX_NOTE_CHARS, Note, Phase, Settings};
use hindsight_tests::cluster::ClusterUnderTest;
use hindsight_tests::peer::{Mark, is_chatter};
use hindsight_tests::{ChangeOptions, Endpoint, Participant, SyncPeer, TestServer};

/// Who makes an attempt.
#[derive(Debug, Clone, Copy)]
enum Who {
    Fay,
    Ann,
    Viewer,
}

/// Which document an attempt changes.
#[derive(Debug, Clone, Copy)]
enum Doc {
    Board,
    Desk,
}

/// Where a table sits: one server, or a cluster where Fay's node owns the board and everyone
/// else comes through the others (Ann and the viewer through node 1, Bob through node 2).
#[derive(Debug, Clone, Copy)]
enum Venue {
    One,
    Cluster,
}

enum Servers {
    One(TestServer),
    Cluster(ClusterUnderTest),
}

/// A board with its cast, taken to some phase.
struct Table {
    servers: Servers,
    fay: Participant,
    ann: Participant,
    bob: Participant,
    viewer: SyncPeer,
    /// The published ids of Ann's and Bob's notes (once published), Ann's first.
    notes: Vec<String>,
    /// Ann's drafts.
    drafts: Vec<String>,
}

impl Table {
    /// A mad-sad-glad board where Ann and Bob wrote two notes each, taken to `phase` (from Group
    /// on, every note is published).
    async fn at(venue: Venue, phase: Phase) -> anyhow::Result<Self> {
        let servers = match venue {
            Venue::One => Servers::One(TestServer::spawn().await),
            Venue::Cluster => Servers::Cluster(ClusterUnderTest::start(3, 2_000).await?),
        };
        let [fays, anns, bobs]: [&dyn Endpoint; 3] = match &servers {
            Servers::One(server) => [server, server, server],
            Servers::Cluster(cluster) => [cluster.node(0), cluster.node(1), cluster.node(2)],
        };
        let board = hindsight_tests::http::create_board(&fays.http_url(), "Rules", "mad-sad-glad").await?;
        let fay = Participant::join_as_facilitator(&fays, &board, "Fay").await?;
        let mut ann = Participant::join(&anns, board.board_id, "Ann").await?;
        let mut bob = Participant::join(&bobs, board.board_id, "Bob").await?;
        let viewer = SyncPeer::open(&anns.ws_url(), board.board_id).await?;
        let drafts = vec![ann.write("mad", "Slow builds").await?, ann.write("sad", "No demo").await?];
        let bobs = [bob.write("mad", "Flaky tests").await?, bob.write("glad", "Nice offsite").await?];
        let notes =
            vec![ann.note_id(&drafts[0]), ann.note_id(&drafts[1]), bob.note_id(&bobs[0]), bob.note_id(&bobs[1])];
        let mut table = Self { servers, fay, ann, bob, viewer, notes, drafts };
        table.go_to(phase).await?;
        Ok(table)
    }

    /// Fay moves the retro on to `phase`, one phase at a time, and everyone catches up.
    async fn go_to(&mut self, phase: Phase) -> anyhow::Result<()> {
        while self.fay.board().phase < phase {
            let next = self.fay.board().phase.next().context("a next phase")?;
            self.fay.set_phase(next).await?;
        }
        if phase >= Phase::Group {
            self.fay.pump_until("every note published", |p| p.board().notes.len() >= 4).await?;
        }
        self.catch_up().await
    }

    /// Everyone's board replica gets to Fay's heads.
    async fn catch_up(&mut self) -> anyhow::Result<()> {
        let heads = self.fay.heads();
        self.ann.pump_until_heads(&heads).await?;
        self.bob.pump_until_heads(&heads).await?;
        self.viewer.pump_until_heads(&heads).await
    }

    /// Returns once every frame the board owed Bob has arrived and his sync is quiet: a barrier
    /// from Fay crossed with nothing else arriving.
    async fn bob_is_quiet(&mut self) -> anyhow::Result<Mark> {
        for _ in 0..20 {
            let mark = self.bob.mark();
            let barrier = self.fay.send_barrier().await?;
            self.bob.wait_barrier(self.fay.peer_id(), barrier).await?;
            if self.bob.frames_since(mark).iter().all(|frame| is_chatter(frame)) {
                return Ok(self.bob.mark());
            }
        }
        anyhow::bail!("Bob's connection never went quiet")
    }

    /// `who` makes `change` to `doc`, and the three things every refusal shows are asserted.
    async fn refused(
        &mut self,
        what: &str,
        who: Who,
        doc: Doc,
        change: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.attempt(what, who, doc, &ChangeOptions::default(), change).await
    }

    async fn attempt(
        &mut self,
        what: &str,
        who: Who,
        doc: Doc,
        options: &ChangeOptions,
        change: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mark = self.bob_is_quiet().await?;
        let heads = self.bob.heads();
        let board_id = self.fay.board_id();
        let sender = match who {
            Who::Fay => Some(&mut self.fay),
            Who::Ann => Some(&mut self.ann),
            Who::Viewer => None,
        };
        let verdict = match (sender, doc) {
            (Some(sender), Doc::Board) => {
                let verdict = sender.raw_board_change_with(options, change).await?;
                assert_eq!(sender.heads(), heads, "{what}: the sender's board is back to the server's");
                verdict
            }
            (Some(sender), Doc::Desk) => {
                let desk = sender.desk_heads();
                let options = ChangeOptions { fresh_actor: false, ..options.clone() };
                let verdict = sender.raw_desk_change_with(&options, change).await?;
                assert_eq!(sender.desk_heads(), desk, "{what}: the sender's desk is back to the server's");
                verdict
            }
            (None, Doc::Board) => {
                let verdict = self.viewer.raw_change(board_id, options, change).await?;
                assert_eq!(self.viewer.heads(), heads, "{what}: the viewer's board is back to the server's");
                verdict
            }
            (None, Doc::Desk) => anyhow::bail!("a viewer has no desk"),
        };
        assert!(verdict.is_refused(), "{what}: the server took it ({verdict:?})");

        let barrier = self.fay.send_barrier().await?;
        self.bob.wait_barrier(self.fay.peer_id(), barrier).await?;
        let received: Vec<_> =
            self.bob.frames_since(mark).iter().filter(|f| !is_chatter(f)).map(|f| WireMessage::decode(f)).collect();
        assert!(received.is_empty(), "{what}: the bystander received {received:?}");
        assert_eq!(self.bob.heads(), heads, "{what}: the board changed");
        Ok(())
    }

    /// Ends the story: the servers stop cleanly.
    async fn finish(self) -> anyhow::Result<()> {
        match self.servers {
            Servers::One(server) => server.shutdown().await,
            Servers::Cluster(cluster) => cluster.stop().await?,
        }
        Ok(())
    }
}

/// Puts `value` at `key` of the root map `map`, bypassing every typed writer.
fn put_in(tx: &mut Transaction<'_>, map: &'static str, key: &str, value: impl Into<ScalarValue>) -> anyhow::Result<()> {
    let parent = schema::root_map(tx, map)?;
    tx.put(&parent, key, value)?;
    Ok(())
}

/// Puts `value` at `key` of the entry `id` of the root map `map`.
fn put_in_entry(
    tx: &mut Transaction<'_>,
    map: &'static str,
    id: &str,
    key: &str,
    value: impl Into<ScalarValue>,
) -> anyhow::Result<()> {
    let parent = schema::root_map(tx, map)?;
    let (_, entry) = automerge::ReadDoc::get(tx, &parent, id)?.with_context(|| format!("no `{id}` in `{map}`"))?;
    tx.put(&entry, key, value)?;
    Ok(())
}

fn action(id: &str) -> ActionItem {
    ActionItem {
        id: id.into(),
        text: "Fix the flaky test".into(),
        owner: "The platform team".into(),
        due: String::new(),
        cluster: None,
    }
}

fn draft(id: &str, text: &str) -> Draft {
    Draft { id: id.into(), column: "glad".into(), text: text.into(), created_at: 0 }
}

async fn only_the_facilitator_runs_the_retro(venue: Venue) -> anyhow::Result<()> {
    let mut t = Table::at(venue, Phase::Write).await?;
    use {Doc::Board, Who::Ann};
    t.refused("Ann moves the phase", Ann, Board, |tx| Ok(edit::set_phase(tx, Phase::Reveal)?)).await?;
    t.refused("Ann retitles the board", Ann, Board, |tx| Ok(edit::set_title(tx, "Ann's board")?)).await?;
    let lenient = Settings { vote_budget: 50, max_votes_per_item: 50, ..Settings::default() };
    t.refused("Ann changes the settings", Ann, Board, |tx| Ok(edit::set_settings(tx, &lenient)?)).await?;
    t.refused("Ann starts the timer", Ann, Board, |tx| Ok(edit::start_timer(tx, 60_000, 1_000)?)).await?;
    let ann = t.ann.id().to_owned();
    t.refused("Ann makes herself facilitator", Ann, Board, |tx| Ok(edit::hand_over(tx, &ann)?)).await?;
    t.refused("Fay hands over to a stranger", Who::Fay, Board, |tx| Ok(edit::hand_over(tx, "stranger")?)).await?;

    // The facilitator may do all of it.
    t.fay.set_title("Fay's board").await?;
    t.fay.set_settings(|s| s.vote_budget = 4).await?;
    t.fay.peer().raw_board_change(|tx| Ok(edit::start_timer(tx, 60_000, 1_000)?)).await?.accepted()?;
    t.fay.hand_over(t.bob.id()).await?;
    t.bob.pump_until("the role", |p| p.board().facilitator.as_deref() == Some(p.id())).await?;
    t.refused("Fay moves the phase after handing over", Who::Fay, Board, |tx| Ok(edit::set_phase(tx, Phase::Reveal)?))
        .await?;
    let fay = t.fay.id().to_owned();
    t.bob.hand_over(&fay).await?;
    t.fay.pump_until("the role back", |p| p.board().facilitator.as_deref() == Some(p.id())).await?;
    t.fay.set_phase(Phase::Reveal).await?;
    t.catch_up().await?;
    let board = t.bob.board();
    assert_eq!((board.title.as_str(), board.settings.vote_budget, board.phase), ("Fay's board", 4, Phase::Reveal));
    assert_eq!(board.timer.duration_ms, 60_000);

    // Revealing and focusing are the facilitator's too, each in its phase.
    t.refused("Ann reveals a column", Ann, Board, |tx| Ok(edit::reveal(tx, "mad")?)).await?;
    t.fay.reveal("mad").await?;
    t.go_to(Phase::Discuss).await?;
    let item = t.notes[0].clone();
    t.refused("Ann focuses an item", Ann, Board, |tx| Ok(edit::set_focus(tx, Some(&item))?)).await?;
    t.fay.focus(Some(&t.notes[0].clone())).await?;
    t.finish().await
}

async fn notes_and_vote_totals_are_written_by_the_server_alone(venue: Venue) -> anyhow::Result<()> {
    let mut t = Table::at(venue, Phase::Reveal).await?;
    t.fay.reveal("mad").await?;
    t.catch_up().await?;
    let published = t.notes[0].clone();
    assert!(t.bob.board().notes.contains_key(&published), "Ann's mad note is out");

    let forged = Note {
        id: "forged".into(),
        column: "glad".into(),
        text: "Bob wrote this".into(),
        created_at: 0,
        cluster: None,
        author: Some("Bob".into()),
    };
    for who in [Who::Ann, Who::Fay] {
        let what = format!("{who:?} creates a note on the board");
        t.refused(&what, who, Doc::Board, |tx| Ok(edit::publish_note(tx, &forged)?)).await?;
        let what = format!("{who:?} rewrites a published note");
        t.refused(&what, who, Doc::Board, |tx| put_in_entry(tx, "notes", &published, "text", "Rewritten")).await?;
        let what = format!("{who:?} signs a published note");
        t.refused(&what, who, Doc::Board, |tx| put_in_entry(tx, "notes", &published, "author", "Ann")).await?;
        let what = format!("{who:?} deletes a published note");
        t.refused(&what, who, Doc::Board, |tx| Ok(edit::unpublish_note(tx, &published)?)).await?;
        let what = format!("{who:?} writes a vote total");
        t.refused(&what, who, Doc::Board, |tx| put_in(tx, "vote_totals", &published, 99)).await?;
    }
    // Once a note is out, anonymity is settled; other settings may still change until voting.
    t.refused("Fay names the notes after the reveal", Who::Fay, Doc::Board, |tx| {
        Ok(edit::set_settings(tx, &Settings { anonymous: false, ..Settings::default() })?)
    })
    .await?;
    t.fay.set_settings(|s| s.max_votes_per_item = 2).await?;
    assert!(t.fay.board().settings.anonymous);

    // What the server does write: Ann's edit of her draft reaches the published note.
    t.ann.edit_draft(&t.drafts[0].clone(), "Very slow builds").await?;
    t.bob
        .pump_until("the edit", |p| p.board().notes.get(&published).is_some_and(|n| n.text == "Very slow builds"))
        .await?;
    t.finish().await
}

async fn a_viewer_may_write_nothing(venue: Venue) -> anyhow::Result<()> {
    let mut t = Table::at(venue, Phase::Group).await?;
    let (a, b) = (t.notes[0].clone(), t.notes[1].clone());
    let board = t.viewer.board();
    t.refused("the viewer groups two notes", Who::Viewer, Doc::Board, |tx| {
        Ok(edit::group(tx, &board, &a, &b, "viewer-cluster")?)
    })
    .await?;
    t.refused("the viewer moves the phase", Who::Viewer, Doc::Board, |tx| Ok(edit::set_phase(tx, Phase::Done)?))
        .await?;
    t.refused("the viewer retitles the board", Who::Viewer, Doc::Board, |tx| Ok(edit::set_title(tx, "Viewed")?))
        .await?;
    t.refused("the viewer names itself facilitator", Who::Viewer, Doc::Board, |tx| Ok(edit::hand_over(tx, "viewer")?))
        .await?;
    assert_eq!(t.viewer.refusals(), 4);

    // Ann, who joined, may group the same notes.
    let cluster = t.ann.group(&a, &b).await?;
    t.bob.pump_until("the cluster", |p| p.board().notes[&a].cluster.as_deref() == Some(cluster.as_str())).await?;
    t.go_to(Phase::Discuss).await?;
    t.refused("the viewer writes an action item", Who::Viewer, Doc::Board, |tx| {
        Ok(edit::put_action(tx, &action("v"))?)
    })
    .await?;
    t.ann.put_action(&action("a1")).await?;
    t.finish().await
}

async fn each_phase_allows_its_own_gestures_only(venue: Venue) -> anyhow::Result<()> {
    use {Doc::Board, Doc::Desk, Who::Ann};
    let mut t = Table::at(venue, Phase::Reveal).await?;
    t.fay.reveal_all().await?;
    t.catch_up().await?;
    let (a, b) = (t.notes[0].clone(), t.notes[2].clone());

    // Grouping belongs to Group.
    let board = t.ann.board();
    t.refused("Ann groups in Reveal", Ann, Board, |tx| Ok(edit::group(tx, &board, &a, &b, "early")?)).await?;
    t.refused("Ann votes in Reveal", Ann, Desk, |tx| Ok(edit::set_votes(tx, &a, 1)?)).await?;
    // A new note still arrives in Reveal (it may have been written offline during Write).
    t.ann.write("glad", "Written on the train").await?;
    t.go_to(Phase::Group).await?;
    let cluster = t.ann.group(&a, &b).await?;
    t.ann.title_cluster(&cluster, "CI").await?;
    t.refused("Ann writes an action item in Group", Ann, Board, |tx| Ok(edit::put_action(tx, &action("early"))?))
        .await?;
    t.refused("Ann votes in Group", Ann, Desk, |tx| Ok(edit::set_votes(tx, &cluster, 1)?)).await?;
    let mine = t.drafts[1].clone();
    t.ann.edit_draft(&mine, "No demo this sprint").await?;

    // Voting belongs to Vote; notes are settled by then.
    t.go_to(Phase::Vote).await?;
    let board = t.ann.board();
    let lone = t.notes[1].clone();
    t.refused("Ann groups in Vote", Ann, Board, |tx| Ok(edit::group(tx, &board, &lone, &cluster, "late")?)).await?;
    t.refused("Ann ungroups in Vote", Ann, Board, |tx| Ok(edit::ungroup(tx, &a)?)).await?;
    t.refused("Ann writes a new note in Vote", Ann, Desk, |tx| Ok(edit::add_draft(tx, &draft("late", "Too late"))?))
        .await?;
    t.refused("Ann edits a note in Vote", Ann, Desk, |tx| Ok(edit::set_draft_text(tx, &mine, "Changed my mind")?))
        .await?;
    t.refused("Ann deletes a note in Vote", Ann, Desk, |tx| Ok(edit::delete_draft(tx, &mine)?)).await?;
    t.refused("Fay changes the vote budget in Vote", Who::Fay, Board, |tx| {
        Ok(edit::set_settings(tx, &Settings { vote_budget: 9, ..Settings::default() })?)
    })
    .await?;
    t.ann.vote(&cluster, 2).await?;

    // Action items belong to Discuss and Actions; votes are closed by then.
    t.go_to(Phase::Discuss).await?;
    t.refused("Ann votes in Discuss", Ann, Desk, |tx| Ok(edit::set_votes(tx, &lone, 1)?)).await?;
    t.ann.put_action(&ActionItem { cluster: Some(cluster.clone()), ..action("a1") }).await?;
    t.go_to(Phase::Actions).await?;
    t.ann.put_action(&action("a2")).await?;
    t.bob.pump_until("both action items", |p| p.board().action_items.len() == 2).await?;
    assert_eq!(t.bob.board().vote_totals.get(&cluster), Some(&2));
    t.finish().await
}

async fn votes_stay_within_the_budget_and_the_maximum(venue: Venue) -> anyhow::Result<()> {
    use {Doc::Desk, Who::Ann};
    let mut t = Table::at(venue, Phase::Group).await?;
    t.fay
        .set_settings(|s| {
            s.vote_budget = 4;
            s.max_votes_per_item = 3;
        })
        .await?;
    t.go_to(Phase::Vote).await?;
    let (a, b) = (t.notes[0].clone(), t.notes[2].clone());

    t.refused("Ann puts 4 dots on one item (max 3)", Ann, Desk, |tx| Ok(edit::set_votes(tx, &a, 4)?)).await?;
    t.refused("Ann votes for an item that does not exist", Ann, Desk, |tx| Ok(edit::set_votes(tx, "ghost", 1)?))
        .await?;
    t.refused("Ann votes zero dots by hand", Ann, Desk, |tx| put_in(tx, "votes", &a, 0)).await?;
    t.ann.vote(&a, 3).await?;
    t.refused("Ann spends a fifth dot (budget 4)", Ann, Desk, |tx| Ok(edit::set_votes(tx, &b, 2)?)).await?;
    t.refused("Ann abstains while holding dots", Ann, Desk, |tx| Ok(edit::set_abstain(tx, true)?)).await?;
    t.ann.vote(&b, 1).await?;
    assert_eq!(t.ann.desk().votes_cast(), 4);

    // Bob abstains (he placed nothing); Fay moves a dot.
    t.bob.abstain(true).await?;
    t.fay.vote(&b, 1).await?;
    t.fay.vote(&b, 0).await?;
    t.fay.vote(&a, 1).await?;
    t.go_to(Phase::Discuss).await?;
    let totals = t.bob.board().vote_totals;
    assert_eq!((totals.get(&a), totals.get(&b)), (Some(&4), Some(&1)));
    t.finish().await
}

async fn a_done_retro_is_read_only_but_may_be_reopened(venue: Venue) -> anyhow::Result<()> {
    use {Doc::Board, Doc::Desk};
    let mut t = Table::at(venue, Phase::Done).await?;
    let (a, b) = (t.notes[0].clone(), t.notes[1].clone());
    let board = t.ann.board();
    t.refused("Ann groups in Done", Who::Ann, Board, |tx| Ok(edit::group(tx, &board, &a, &b, "done")?)).await?;
    t.refused("Ann writes an action item in Done", Who::Ann, Board, |tx| Ok(edit::put_action(tx, &action("d"))?))
        .await?;
    t.refused("Ann says she is ready in Done", Who::Ann, Desk, |tx| Ok(edit::set_ready(tx, true)?)).await?;
    t.refused("Ann moves the phase in Done", Who::Ann, Board, |tx| Ok(edit::set_phase(tx, Phase::Actions)?)).await?;
    t.refused("Fay retitles a done board", Who::Fay, Board, |tx| Ok(edit::set_title(tx, "Renamed")?)).await?;
    t.refused("Fay starts a timer in Done", Who::Fay, Board, |tx| Ok(edit::start_timer(tx, 1_000, 1)?)).await?;
    t.refused("Fay focuses in Done", Who::Fay, Board, |tx| Ok(edit::set_focus(tx, Some(&a))?)).await?;
    let ann = t.ann.id().to_owned();
    t.refused("Fay hands over in Done", Who::Fay, Board, |tx| Ok(edit::hand_over(tx, &ann)?)).await?;
    t.refused("the viewer moves the phase in Done", Who::Viewer, Board, |tx| Ok(edit::set_phase(tx, Phase::Write)?))
        .await?;

    // The one way out: the facilitator reopens it.
    t.fay.set_phase(Phase::Actions).await?;
    t.ann.put_action(&action("after")).await?;
    t.bob.pump_until("the reopened board", |p| p.board().action_items.contains_key("after")).await?;
    t.finish().await
}

async fn changes_carry_no_message_no_author_and_no_oversized_note(venue: Venue) -> anyhow::Result<()> {
    use {Doc::Board, Doc::Desk};
    let mut t = Table::at(venue, Phase::Write).await?;
    let message = ChangeOptions { message: Some("by Fay".into()), ..ChangeOptions::default() };
    t.attempt("Fay's change with a message", Who::Fay, Board, &message, |tx| Ok(edit::set_title(tx, "Signed")?))
        .await?;
    let author = ChangeOptions { author: Some(b"fay@example.com".to_vec()), ..ChangeOptions::default() };
    t.attempt("Fay's change with an author", Who::Fay, Board, &author, |tx| Ok(edit::set_title(tx, "Signed")?)).await?;
    let note = draft("signed", "Signed note");
    t.attempt("Ann's draft with a message", Who::Ann, Desk, &message, |tx| Ok(edit::add_draft(tx, &note)?)).await?;
    t.attempt("Ann's draft with an author", Who::Ann, Desk, &author, |tx| Ok(edit::add_draft(tx, &note)?)).await?;

    let long = draft("long", &"x".repeat(MAX_NOTE_CHARS + 1));
    t.refused("Ann's note of 2,001 characters", Who::Ann, Desk, |tx| {
        let drafts = schema::root_map(tx, "drafts")?;
        let entry = tx.put_object(&drafts, &long.id, automerge::ObjType::Map)?;
        tx.put(&entry, "id", long.id.as_str())?;
        tx.put(&entry, "column", long.column.as_str())?;
        tx.put(&entry, "text", long.text.as_str())?;
        tx.put(&entry, "created_at", long.created_at)?;
        Ok(())
    })
    .await?;

    // Without them, the same changes go through: the longest note, a plain title.
    let longest = "x".repeat(MAX_NOTE_CHARS);
    let id = t.ann.write("glad", &longest).await?;
    t.fay.set_title("Plain").await?;
    t.go_to(Phase::Group).await?;
    assert_eq!(t.bob.board().notes[&t.ann.note_id(&id)].text, longest);
    assert_eq!(t.bob.board().title, "Plain");
    t.finish().await
}

// Each story on one server; and all of them in a cluster, through nodes that do not own the
// board (issue 16).

#[tokio::test]
async fn only_the_facilitator_runs_the_retro_on_one_server() -> anyhow::Result<()> {
    only_the_facilitator_runs_the_retro(Venue::One).await
}

#[tokio::test]
async fn notes_and_vote_totals_are_written_by_the_server_alone_on_one_server() -> anyhow::Result<()> {
    notes_and_vote_totals_are_written_by_the_server_alone(Venue::One).await
}

#[tokio::test]
async fn a_viewer_may_write_nothing_on_one_server() -> anyhow::Result<()> {
    a_viewer_may_write_nothing(Venue::One).await
}

#[tokio::test]
async fn each_phase_allows_its_own_gestures_only_on_one_server() -> anyhow::Result<()> {
    each_phase_allows_its_own_gestures_only(Venue::One).await
}

#[tokio::test]
async fn votes_stay_within_the_budget_and_the_maximum_on_one_server() -> anyhow::Result<()> {
    votes_stay_within_the_budget_and_the_maximum(Venue::One).await
}

#[tokio::test]
async fn a_done_retro_is_read_only_but_may_be_reopened_on_one_server() -> anyhow::Result<()> {
    a_done_retro_is_read_only_but_may_be_reopened(Venue::One).await
}

#[tokio::test]
async fn changes_carry_no_message_no_author_and_no_oversized_note_on_one_server() -> anyhow::Result<()> {
    changes_carry_no_message_no_author_and_no_oversized_note(Venue::One).await
}

#[tokio::test]
async fn every_rule_holds_through_nodes_that_do_not_own_the_board() -> anyhow::Result<()> {
    only_the_facilitator_runs_the_retro(Venue::Cluster)
        .await
        .context("only_the_facilitator_runs_the_retro, in a cluster")?;
    notes_and_vote_totals_are_written_by_the_server_alone(Venue::Cluster)
        .await
        .context("notes_and_vote_totals_are_written_by_the_server_alone, in a cluster")?;
    a_viewer_may_write_nothing(Venue::Cluster).await.context("a_viewer_may_write_nothing, in a cluster")?;
    each_phase_allows_its_own_gestures_only(Venue::Cluster)
        .await
        .context("each_phase_allows_its_own_gestures_only, in a cluster")?;
    votes_stay_within_the_budget_and_the_maximum(Venue::Cluster)
        .await
        .context("votes_stay_within_the_budget_and_the_maximum, in a cluster")?;
    a_done_retro_is_read_only_but_may_be_reopened(Venue::Cluster)
        .await
        .context("a_done_retro_is_read_only_but_may_be_reopened, in a cluster")?;
    changes_carry_no_message_no_author_and_no_oversized_note(Venue::Cluster)
        .await
        .context("changes_carry_no_message_no_author_and_no_oversized_note, in a cluster")?;
    Ok(())
}
