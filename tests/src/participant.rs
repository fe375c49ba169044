//! [`Participant`]: someone who joined a board, as the browser client is: joined over HTTP (a
//! name, maybe the facilitator key), then ONE connection that requests the participant's desk and
//! then the board, and keeps both replicas synced.
//!
//! The typed helpers make the changes the UI offers, the way the real client makes them (a fresh
//! random actor and time 0 for every board change), and wait until the server stored them: a
//! refusal is an error. The `raw_*` helpers make any change at all and return the [`Verdict`], to
//! prove that the server refuses what the UI would never send. The `send_*` helpers send without
//! waiting, for races.

use anyhow::Context;
use automerge::transaction::Transaction;
use automerge::{Automerge, ChangeHash};
use hindsight_shared::edit;
use hindsight_shared::ids::{DocumentId, PeerId, published_note_id, random_token};
use hindsight_shared::presence::{Notice, PresenceEntry};
use hindsight_shared::schema::{ActionItem, Board, Desk, Draft, Phase, Settings};

use crate::http::{self, BoardCreated};
use crate::peer::{ChangeOptions, Mark, SyncPeer, Verdict, now_ms};
use crate::{Endpoint, within};

/// Who a participant is on a board: what the join endpoint answered, kept to connect again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub board: DocumentId,
    /// Public: shown in presence.
    pub id: String,
    pub name: String,
    /// Secret: the desk's document id.
    pub desk: DocumentId,
    /// The join endpoint said they joined as the facilitator.
    pub joined_as_facilitator: bool,
}

/// A participant's connection, with replicas of their desk and the board.
pub struct Participant {
    peer: SyncPeer,
    identity: Identity,
}

/// How a well-behaved client commits to its own desk: its own actor, time 0.
fn desk_options() -> ChangeOptions {
    ChangeOptions { fresh_actor: false, ..ChangeOptions::default() }
}

impl Participant {
    /// Joins `board` as `name` and connects.
    pub async fn join(server: &impl Endpoint, board: DocumentId, name: &str) -> anyhow::Result<Self> {
        Self::join_with_key(server, board, name, None).await
    }

    /// Joins with the board's facilitator key and connects.
    pub async fn join_as_facilitator(server: &impl Endpoint, board: &BoardCreated, name: &str) -> anyhow::Result<Self> {
        let participant = Self::join_with_key(server, board.board_id, name, Some(&board.facilitator_key)).await?;
        anyhow::ensure!(participant.identity.joined_as_facilitator, "joined with the key but not as the facilitator");
        Ok(participant)
    }

    /// Joins with an optional facilitator key and connects.
    pub async fn join_with_key(
        server: &impl Endpoint,
        board: DocumentId,
        name: &str,
        facilitator_key: Option<&str>,
    ) -> anyhow::Result<Self> {
        let joined = http::join_board(&server.http_url(), board, name, facilitator_key).await?;
        let identity = Identity {
            board,
            id: joined.participant_id,
            name: name.to_owned(),
            desk: joined.desk_id,
            joined_as_facilitator: joined.facilitator,
        };
        Self::connect(&server.ws_url(), identity).await
    }

    /// Opens a connection as someone who joined before (after a restart, or a second tab):
    /// requests the desk, then the board, and waits for both.
    pub async fn connect(ws_url: &str, identity: Identity) -> anyhow::Result<Self> {
        let mut peer = SyncPeer::connect(ws_url).await?;
        peer.request(identity.desk).await?;
        peer.wait_arrived(identity.desk).await.context("the desk")?;
        peer.open_board(identity.board).await?;
        let participant = Self { peer, identity };
        participant.try_desk().context("the desk document")?;
        Ok(participant)
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The participant's public id.
    pub fn id(&self) -> &str {
        &self.identity.id
    }

    pub fn name(&self) -> &str {
        &self.identity.name
    }

    pub fn desk_id(&self) -> DocumentId {
        self.identity.desk
    }

    pub fn board_id(&self) -> DocumentId {
        self.identity.board
    }

    /// The connection's peer id.
    pub fn peer_id(&self) -> &PeerId {
        self.peer.peer_id()
    }

    /// The connection underneath, for anything the helpers here do not cover.
    pub fn peer(&mut self) -> &mut SyncPeer {
        &mut self.peer
    }

    pub fn board(&self) -> Board {
        self.peer.board()
    }

    pub fn desk(&self) -> Desk {
        self.try_desk().expect("the desk replica is not a desk")
    }

    fn try_desk(&self) -> anyhow::Result<Desk> {
        Ok(Desk::read(self.desk_doc())?)
    }

    /// The heads of the board replica.
    pub fn heads(&self) -> Vec<ChangeHash> {
        self.peer.heads()
    }

    pub fn desk_heads(&self) -> Vec<ChangeHash> {
        self.desk_doc().get_heads()
    }

    pub fn board_doc(&self) -> &Automerge {
        self.peer.doc()
    }

    pub fn desk_doc(&self) -> &Automerge {
        self.peer.doc_of(self.identity.desk)
    }

    /// Every notice the server sent this connection.
    pub fn notices(&self) -> &[(DocumentId, Notice)] {
        self.peer.notices()
    }

    /// The latest presence roster.
    pub fn roster(&self) -> Option<&[PresenceEntry]> {
        self.peer.roster()
    }

    pub fn refusals(&self) -> usize {
        self.peer.refusals()
    }

    /// Every binary frame this connection received.
    pub fn frames(&self) -> &[Vec<u8>] {
        self.peer.frames()
    }

    pub fn mark(&self) -> Mark {
        self.peer.mark()
    }

    pub fn frames_since(&self, mark: Mark) -> &[Vec<u8>] {
        self.peer.frames_since(mark)
    }

    /// The id the server publishes one of this participant's drafts under.
    pub fn note_id(&self, draft: &str) -> String {
        published_note_id(&self.identity.desk, draft)
    }

    /// Receives and answers messages until `done` holds.
    pub async fn pump_until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) -> anyhow::Result<()> {
        within(what, async {
            while !done(self) {
                self.peer.step().await.with_context(|| format!("while waiting for {what}"))?;
            }
            Ok(())
        })
        .await
    }

    /// Until the server has stored every change of the desk and the board this replica holds.
    pub async fn wait_acknowledged(&mut self) -> anyhow::Result<()> {
        self.peer.wait_acknowledged().await
    }

    /// Syncs until the board replica has exactly `heads`.
    pub async fn pump_until_heads(&mut self, heads: &[ChangeHash]) -> anyhow::Result<()> {
        self.peer.pump_until_heads(heads).await
    }

    pub async fn send_barrier(&mut self) -> anyhow::Result<u64> {
        self.peer.send_barrier().await
    }

    pub async fn wait_barrier(&mut self, from: &PeerId, count: u64) -> anyhow::Result<()> {
        self.peer.wait_barrier(from, count).await
    }

    // ---- Any change, with the server's verdict ---------------------------------------------

    /// Makes any change to the board, as the real client commits (fresh actor, time 0), and
    /// waits for the verdict.
    pub async fn raw_board_change(
        &mut self,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Verdict> {
        self.raw_board_change_with(&ChangeOptions::default(), write).await
    }

    pub async fn raw_board_change_with(
        &mut self,
        options: &ChangeOptions,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Verdict> {
        self.peer.raw_change(self.identity.board, options, write).await
    }

    /// Makes any change to the desk and waits for the verdict.
    pub async fn raw_desk_change(
        &mut self,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Verdict> {
        self.raw_desk_change_with(&desk_options(), write).await
    }

    pub async fn raw_desk_change_with(
        &mut self,
        options: &ChangeOptions,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Verdict> {
        self.peer.raw_change(self.identity.desk, options, write).await
    }

    /// Sends a board change without waiting for the verdict.
    pub async fn send_board_change(
        &mut self,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<ChangeHash> {
        self.peer.send_change(self.identity.board, &ChangeOptions::default(), write).await
    }

    /// Sends a desk change without waiting for the verdict.
    pub async fn send_desk_change(
        &mut self,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<ChangeHash> {
        self.peer.send_change(self.identity.desk, &desk_options(), write).await
    }

    /// Waits for the verdict on a change sent earlier.
    pub async fn verdict(&mut self, hash: ChangeHash) -> anyhow::Result<Verdict> {
        let doc = self
            .peer
            .made_changes()
            .iter()
            .find(|made| made.hash == hash)
            .map(|made| made.doc)
            .context("not a change this participant made")?;
        self.peer.verdict(doc, hash).await
    }

    /// A gesture on the board: sent as the real client sends it, and stored, or an error. A
    /// gesture that changes nothing (dropping a note where it already is) sends nothing.
    async fn board_change(
        &mut self,
        what: &str,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.gesture(self.identity.board, &ChangeOptions::default(), what, write).await
    }

    async fn desk_change(
        &mut self,
        what: &str,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        self.gesture(self.identity.desk, &desk_options(), what, write).await
    }

    async fn gesture(
        &mut self,
        doc: DocumentId,
        options: &ChangeOptions,
        what: &str,
        write: impl FnOnce(&mut Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let name = self.identity.name.clone();
        let Some(hash) = self.peer.send_change_if_any(doc, options, write).await? else { return Ok(()) };
        self.peer.verdict(doc, hash).await?.accepted().with_context(|| format!("{name}: {what}"))
    }

    // ---- The desk ------------------------------------------------------------------------------

    /// Sends a new draft without waiting; returns its id and the change.
    pub async fn send_draft(&mut self, column: &str, text: &str) -> anyhow::Result<(String, ChangeHash)> {
        let draft = Draft { id: random_token::<9>(), column: column.into(), text: text.into(), created_at: now_ms() };
        let hash = self.send_desk_change(|tx| Ok(edit::add_draft(tx, &draft)?)).await?;
        Ok((draft.id, hash))
    }

    /// Writes a note on the desk; returns the draft's id once the server stored it.
    pub async fn write(&mut self, column: &str, text: &str) -> anyhow::Result<String> {
        let (id, hash) = self.send_draft(column, text).await?;
        let name = self.identity.name.clone();
        self.verdict(hash).await?.accepted().with_context(|| format!("{name}: writing `{text}`"))?;
        Ok(id)
    }

    pub async fn edit_draft(&mut self, id: &str, text: &str) -> anyhow::Result<()> {
        self.desk_change("editing a draft", |tx| Ok(edit::set_draft_text(tx, id, text)?)).await
    }

    pub async fn delete_draft(&mut self, id: &str) -> anyhow::Result<()> {
        self.desk_change("deleting a draft", |tx| Ok(edit::delete_draft(tx, id)?)).await
    }

    /// Rates the retro (ROTI, 1 to 5) on the desk, or takes the rating back.
    pub async fn rate(&mut self, rating: Option<i64>) -> anyhow::Result<()> {
        self.desk_change("rating the retro", |tx| Ok(edit::set_roti(tx, rating)?)).await
    }

    /// As the facilitator: closes the ratings and shows the ROTI results.
    pub async fn show_roti(&mut self) -> anyhow::Result<()> {
        self.board_change("showing the ROTI results", |tx| Ok(edit::show_roti(tx)?)).await
    }

    /// Places `dots` on an item (zero takes them back).
    pub async fn vote(&mut self, item: &str, dots: i64) -> anyhow::Result<()> {
        self.desk_change("voting", |tx| Ok(edit::set_votes(tx, item, dots)?)).await
    }

    pub async fn abstain(&mut self, abstain: bool) -> anyhow::Result<()> {
        self.desk_change("abstaining", |tx| Ok(edit::set_abstain(tx, abstain)?)).await
    }

    pub async fn ready(&mut self, ready: bool) -> anyhow::Result<()> {
        self.desk_change("saying ready", |tx| Ok(edit::set_ready(tx, ready)?)).await
    }

    // ---- The board: the facilitator's controls ------------------------------------------------

    pub async fn set_phase(&mut self, phase: Phase) -> anyhow::Result<()> {
        self.board_change(&format!("moving to {}", phase.as_str()), |tx| Ok(edit::set_phase(tx, phase)?)).await
    }

    pub async fn reveal(&mut self, column: &str) -> anyhow::Result<()> {
        self.board_change(&format!("revealing {column}"), |tx| Ok(edit::reveal(tx, column)?)).await
    }

    pub async fn reveal_all(&mut self) -> anyhow::Result<()> {
        self.board_change("revealing every column", |tx| Ok(edit::reveal_all(tx)?)).await
    }

    pub async fn set_title(&mut self, title: &str) -> anyhow::Result<()> {
        self.board_change("setting the title", |tx| Ok(edit::set_title(tx, title)?)).await
    }

    /// Changes the board's settings with `change`.
    pub async fn set_settings(&mut self, change: impl FnOnce(&mut Settings)) -> anyhow::Result<()> {
        let mut settings = self.board().settings;
        change(&mut settings);
        self.board_change("changing the settings", |tx| Ok(edit::set_settings(tx, &settings)?)).await
    }

    pub async fn hand_over(&mut self, participant: &str) -> anyhow::Result<()> {
        self.board_change("handing over", |tx| Ok(edit::hand_over(tx, participant)?)).await
    }

    pub async fn focus(&mut self, item: Option<&str>) -> anyhow::Result<()> {
        self.board_change("focusing", |tx| Ok(edit::set_focus(tx, item)?)).await
    }

    // ---- The board: everyone's --------------------------------------------------------------

    /// Drops note `dragged` onto `target` (a note or a cluster); returns the cluster the change
    /// put it in (a concurrent change may still move it elsewhere).
    pub async fn group(&mut self, dragged: &str, target: &str) -> anyhow::Result<String> {
        let board = self.board();
        let cluster = if board.clusters.contains_key(target) {
            target.to_owned()
        } else {
            let note = board.notes.get(target).context("no such note or cluster")?;
            board.cluster_of(note).map_or_else(random_token::<9>, |c| c.id.clone())
        };
        self.board_change("grouping", |tx| Ok(edit::group(tx, &board, dragged, target, &cluster)?)).await?;
        Ok(cluster)
    }

    pub async fn ungroup(&mut self, note: &str) -> anyhow::Result<()> {
        self.board_change("ungrouping", |tx| Ok(edit::ungroup(tx, note)?)).await
    }

    /// Moves every note of cluster `from` into `into`.
    pub async fn merge(&mut self, from: &str, into: &str) -> anyhow::Result<()> {
        let board = self.board();
        self.board_change("merging", |tx| Ok(edit::merge_clusters(tx, &board, from, into)?)).await
    }

    pub async fn title_cluster(&mut self, cluster: &str, title: &str) -> anyhow::Result<()> {
        self.board_change("naming a cluster", |tx| Ok(edit::set_cluster_title(tx, cluster, title)?)).await
    }

    /// Says what became of one of the team's actions, in Review.
    pub async fn review(
        &mut self,
        id: &str,
        status: hindsight_shared::ledger::Status,
        reason: &str,
    ) -> anyhow::Result<()> {
        self.board_change("reviewing an action", |tx| Ok(edit::set_review(tx, id, status, reason)?)).await
    }

    pub async fn put_action(&mut self, item: &ActionItem) -> anyhow::Result<()> {
        self.board_change("writing an action item", |tx| Ok(edit::put_action(tx, item)?)).await
    }

    /// Connects again after the connection dropped, keeping both replicas (with whatever the
    /// server has not acknowledged yet) and the same desk, as the browser does; see
    /// [`SyncPeer::reconnect`]. Does not wait for the server's answers.
    pub async fn reconnect(&mut self, ws_url: &str) -> anyhow::Result<()> {
        self.peer.reconnect(ws_url).await
    }

    /// Closes the connection politely.
    pub async fn close(self) -> anyhow::Result<()> {
        self.peer.close().await
    }
}
