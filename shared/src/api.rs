//! The HTTP API's contract: every route's path and the JSON it takes and answers, one definition
//! for the server, the browser and the tests.
//!
//! Errors are `{"error": "<a sentence to show>"}` with the status saying what kind
//! ([`ApiError`]); a client tells "there is no such board" by its status, 404, never by the
//! sentence.

use serde::{Deserialize, Serialize};

/// `POST`: creates a board; takes [`CreateBoard`], answers `201` with [`BoardCreated`].
pub const BOARDS: &str = "/api/boards";
/// `GET`: the templates a board can start from.
pub const TEMPLATES: &str = "/api/templates";

/// `POST`: joins the board; takes [`JoinBoard`], answers `201` with [`JoinedBoard`].
pub fn participants(board: impl std::fmt::Display) -> String {
    format!("/api/boards/{board}/participants")
}

/// `POST`: takes the facilitator role with the key; takes [`ClaimFacilitator`], answers `204`.
pub fn facilitator(board: impl std::fmt::Display) -> String {
    format!("/api/boards/{board}/facilitator")
}

/// `GET ?format=md|csv|json|html`: the board exported.
pub fn export(board: impl std::fmt::Display, format: &str) -> String {
    format!("/api/boards/{board}/export?format={format}")
}

/// `GET`: a postmortem's document in `layout` (see `postmortem::Layout`).
pub fn export_postmortem(board: impl std::fmt::Display, format: &str, layout: &str) -> String {
    format!("/api/boards/{board}/export?format={format}&layout={layout}")
}

/// `POST`: an Alertmanager or Grafana webhook adds its alerts to the board's timeline; the token
/// (see `alerts::token`) makes the URL a capability. Answers `202` with how many were added.
pub fn alerts(board: impl std::fmt::Display, token: &str) -> String {
    format!("/api/boards/{board}/alerts/{token}")
}

/// The page of a board, the link participants share.
pub fn board_page(board: impl std::fmt::Display) -> String {
    format!("/b/{board}")
}

/// `POST`: creates a team; takes [`CreateTeam`], answers `201` with [`TeamCreated`].
pub const TEAMS: &str = "/api/teams";

/// `POST`: starts a retro of the team; takes [`CreateBoard`], answers `201` with [`BoardCreated`].
pub fn team_boards(team: impl std::fmt::Display) -> String {
    format!("/api/teams/{team}/boards")
}

/// `POST`: changes the team with its key; takes [`ManageTeam`], answers `204`.
pub fn team_manage(team: impl std::fmt::Display) -> String {
    format!("/api/teams/{team}/manage")
}

/// `GET ?format=md|csv|json`: the team's actions (Markdown, CSV) or the whole ledger (JSON).
pub fn team_export(team: impl std::fmt::Display, format: &str) -> String {
    format!("/api/teams/{team}/export?format={format}")
}

/// The page of a team, the link its members keep.
pub fn team_page(team: impl std::fmt::Display) -> String {
    format!("/t/{team}")
}

/// The body of `POST /api/teams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTeam {
    pub name: String,
}

/// The answer to `POST /api/teams`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamCreated {
    pub team_id: String,
    /// The team page's link, to keep and share with the team.
    pub url: String,
    /// The secret that renames the team, removes a retro from it or deletes it. Shown once;
    /// only its hash is stored.
    pub team_key: String,
}

/// The body of `POST /api/teams/{team_id}/manage`: what a team key holder does.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManageTeam {
    pub team_key: String,
    #[serde(flatten)]
    pub change: TeamChange,
}

/// A change to a team that needs its key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TeamChange {
    Rename {
        name: String,
    },
    /// Takes a retro out of the team: its actions and causes leave the ledger.
    RemoveBoard {
        board_id: String,
    },
    /// Deletes the team's ledger. Its boards stay, without a team.
    Delete,
}

/// The body of `POST /api/boards`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBoard {
    pub title: String,
    /// A template id (`GET /api/templates` lists them).
    pub template: String,
}

/// The answer to `POST /api/boards`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoardCreated {
    pub board_id: String,
    /// The link to share with participants.
    pub url: String,
    /// The secret that grants facilitator rights. Shown once; only its hash is stored.
    pub facilitator_key: String,
}

/// The body of `POST /api/boards/{board_id}/participants`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinBoard {
    /// The display name to show others; may be empty.
    #[serde(default)]
    pub name: String,
    /// The board's facilitator key, to join as its facilitator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facilitator_key: Option<String>,
}

/// The answer to joining: who you are on this board, and your desk. Keep `desk_id` secret:
/// whoever syncs that document is you.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinedBoard {
    /// Public: shown in presence.
    pub participant_id: String,
    /// Secret: the participant's desk document.
    pub desk_id: String,
    #[serde(default)]
    pub facilitator: bool,
}

/// The body of `POST /api/boards/{board_id}/facilitator`: a participant who holds the key takes
/// the facilitator role, from any device they joined on.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimFacilitator {
    pub participant_id: String,
    /// The participant's desk id: the secret that proves they are that participant.
    pub desk_id: String,
    pub facilitator_key: String,
}

/// The query of `GET /api/boards/{board_id}/export`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportQuery {
    /// `md`, `csv`, `json` or `html` (printable).
    #[serde(default = "default_format")]
    pub format: String,
    /// A postmortem's layout: `sre` (the default) or `cmr` (contributors, mitigators, risks).
    #[serde(default)]
    pub layout: Option<String>,
}

fn default_format() -> String {
    "md".into()
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// A sentence to show the user.
    pub error: String,
}

/// Secrets (keys, desk ids, board ids: capabilities) never show in `{:?}`, so no log line can
/// carry one.
const HIDDEN: &str = "<secret>";

impl std::fmt::Debug for BoardCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardCreated")
            .field("board_id", &HIDDEN)
            .field("url", &HIDDEN)
            .field("facilitator_key", &HIDDEN)
            .finish()
    }
}

impl std::fmt::Debug for TeamCreated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamCreated")
            .field("team_id", &HIDDEN)
            .field("url", &HIDDEN)
            .field("team_key", &HIDDEN)
            .finish()
    }
}

impl std::fmt::Debug for ManageTeam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManageTeam").field("team_key", &HIDDEN).field("change", &self.change).finish()
    }
}

impl std::fmt::Debug for TeamChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rename { name } => f.debug_struct("Rename").field("name", name).finish(),
            Self::RemoveBoard { .. } => f.debug_struct("RemoveBoard").field("board_id", &HIDDEN).finish(),
            Self::Delete => f.write_str("Delete"),
        }
    }
}

impl std::fmt::Debug for JoinBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = self.facilitator_key.as_ref().map(|_| HIDDEN);
        f.debug_struct("JoinBoard").field("name", &self.name).field("facilitator_key", &key).finish()
    }
}

impl std::fmt::Debug for JoinedBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinedBoard")
            .field("participant_id", &self.participant_id)
            .field("desk_id", &HIDDEN)
            .field("facilitator", &self.facilitator)
            .finish()
    }
}

impl std::fmt::Debug for ClaimFacilitator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimFacilitator")
            .field("participant_id", &self.participant_id)
            .field("desk_id", &HIDDEN)
            .field("facilitator_key", &HIDDEN)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_without_a_key_sends_no_key_field() {
        let body = serde_json::to_value(JoinBoard { name: "Ada".into(), facilitator_key: None }).unwrap();
        assert_eq!(body, serde_json::json!({ "name": "Ada" }));
        let read: JoinBoard = serde_json::from_str("{}").unwrap();
        assert_eq!(read, JoinBoard::default());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let claim = ClaimFacilitator {
            participant_id: "p1".into(),
            desk_id: "desk-secret".into(),
            facilitator_key: "key-secret".into(),
        };
        let join = JoinBoard { name: "Ada".into(), facilitator_key: Some("key-secret".into()) };
        let joined = JoinedBoard { participant_id: "p1".into(), desk_id: "desk-secret".into(), facilitator: true };
        let created = BoardCreated {
            board_id: "board-secret".into(),
            url: "http://x/b/board-secret".into(),
            facilitator_key: "key-secret".into(),
        };
        let team = TeamCreated { team_id: "t".into(), url: "u".into(), team_key: "team-secret".into() };
        let manage = ManageTeam {
            team_key: "team-secret".into(),
            change: TeamChange::RemoveBoard { board_id: "board-secret".into() },
        };
        let shown = [
            format!("{claim:?}"),
            format!("{join:?}"),
            format!("{joined:?}"),
            format!("{created:?}"),
            format!("{team:?}"),
            format!("{manage:?}"),
        ];
        for shown in shown {
            assert!(!shown.contains("-secret"), "{shown}");
        }
    }

    #[test]
    fn paths_name_the_board() {
        assert_eq!(participants("abc"), "/api/boards/abc/participants");
        assert_eq!(facilitator("abc"), "/api/boards/abc/facilitator");
        assert_eq!(export("abc", "csv"), "/api/boards/abc/export?format=csv");
    }
}
