//! Teams over the real API: [`create_team`], [`create_team_board`], [`manage_team`], and
//! [`TeamPage`], one connection syncing a team's ledger the way the team page does.

use anyhow::{Context, bail};
use automerge::ChangeHash;
use hindsight_shared::api::{self, TeamChange};
use hindsight_shared::ids::DocumentId;
use hindsight_shared::ledger::{self, Ledger, Status};

use crate::http::{self, BoardCreated, HttpResponse};
use crate::peer::{ChangeOptions, SyncPeer, Verdict};

/// What `POST /api/teams` answers, with the team id parsed.
#[derive(Debug, Clone)]
pub struct TeamCreated {
    pub team_id: DocumentId,
    pub url: String,
    pub team_key: String,
}

/// `POST /api/teams`, expecting `201 Created`.
pub async fn create_team(base: &str, name: &str) -> anyhow::Result<TeamCreated> {
    let response = http::post_json(&format!("{base}{}", api::TEAMS), &serde_json::json!({ "name": name })).await?;
    if response.status != 201 {
        bail!("creating a team answered {} {}", response.status, response.text());
    }
    let answer: api::TeamCreated = response.json()?;
    let team_id = answer.team_id.parse().context("the team id")?;
    Ok(TeamCreated { team_id, url: answer.url, team_key: answer.team_key })
}

/// `POST /api/teams/{team}/boards`, as it answers.
pub async fn post_team_board(base: &str, team: &str, title: &str, template: &str) -> anyhow::Result<HttpResponse> {
    let body = serde_json::json!({ "title": title, "template": template });
    http::post_json(&format!("{base}{}", api::team_boards(team)), &body).await
}

/// Starts a retro of the team, expecting `201 Created`.
pub async fn create_team_board(base: &str, team: DocumentId, title: &str) -> anyhow::Result<BoardCreated> {
    let response = post_team_board(base, &team.to_string(), title, "start-stop-continue").await?;
    if response.status != 201 {
        bail!("starting a retro of the team answered {} {}", response.status, response.text());
    }
    let answer: api::BoardCreated = response.json()?;
    Ok(BoardCreated { board_id: answer.board_id.parse()?, url: answer.url, facilitator_key: answer.facilitator_key })
}

/// `POST /api/teams/{team}/manage`, as it answers.
pub async fn manage_team(base: &str, team: DocumentId, key: &str, change: TeamChange) -> anyhow::Result<HttpResponse> {
    let body = serde_json::to_value(api::ManageTeam { team_key: key.to_owned(), change })?;
    http::post_json(&format!("{base}{}", api::team_manage(team)), &body).await
}

/// A team page: one connection syncing the team's ledger.
pub struct TeamPage {
    peer: SyncPeer,
    team: DocumentId,
}

impl TeamPage {
    /// Connects, asks for the ledger and syncs until it has arrived.
    pub async fn open(ws_url: &str, team: DocumentId) -> anyhow::Result<Self> {
        let mut peer = SyncPeer::connect(ws_url).await?;
        peer.request(team).await?;
        peer.wait_arrived(team).await?;
        Ok(Self { peer, team })
    }

    pub fn ledger(&self) -> Ledger {
        Ledger::read(self.peer.doc_of(self.team)).expect("the ledger is readable")
    }

    pub fn peer(&mut self) -> &mut SyncPeer {
        &mut self.peer
    }

    /// Syncs until `done` holds for the ledger.
    pub async fn pump_until(&mut self, what: &str, mut done: impl FnMut(&Ledger) -> bool) -> anyhow::Result<()> {
        let team = self.team;
        self.peer.pump(what, |peer| Ledger::read(peer.doc_of(team)).is_ok_and(|l| done(&l))).await
    }

    /// The ledger action whose text is `text`.
    pub fn action(&self, text: &str) -> ledger::LedgerAction {
        let ledger = self.ledger();
        ledger.actions.values().find(|a| a.text == text).cloned().unwrap_or_else(|| panic!("no action `{text}`"))
    }

    /// Changes an action's status as the team page does, and waits for the server's verdict.
    pub async fn set_status(&mut self, text: &str, status: Status, reason: &str) -> anyhow::Result<Verdict> {
        let id = self.action(text).id;
        self.raw(|tx| Ok(ledger::set_status(tx, &id, status, reason)?)).await
    }

    /// Makes a status change without sending it (as offline), to send on [`reconnect`](Self::reconnect).
    pub fn set_status_offline(&mut self, text: &str, status: Status) -> anyhow::Result<ChangeHash> {
        let id = self.action(text).id;
        self.peer.commit_local(self.team, &ChangeOptions::default(), |tx| Ok(ledger::set_status(tx, &id, status, "")?))
    }

    /// Any change to the ledger, and the server's verdict.
    pub async fn raw(
        &mut self,
        write: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> anyhow::Result<()>,
    ) -> anyhow::Result<Verdict> {
        self.peer.raw_change(self.team, &ChangeOptions::default(), write).await
    }

    pub async fn verdict(&mut self, hash: ChangeHash) -> anyhow::Result<Verdict> {
        self.peer.verdict(self.team, hash).await
    }

    pub async fn reconnect(&mut self, ws_url: &str) -> anyhow::Result<()> {
        self.peer.reconnect(ws_url).await
    }
}
