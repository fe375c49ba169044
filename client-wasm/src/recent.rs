//! The boards (and teams) this browser has opened, newest first, kept in `localStorage`: the home page lists
//! them, so losing a link does not lose a retro. Nothing here leaves the browser.

use hindsight_shared::schema::Phase;
use serde::{Deserialize, Serialize};

const KEY: &str = "hindsight:boards";
/// The most boards kept; the oldest go first.
const MAX_BOARDS: usize = 50;

/// A board this browser opened, as it last saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visited {
    pub id: String,
    pub title: String,
    /// The phase's title (`Write`, `Done`, ...).
    pub phase: String,
    /// When it was last open here, in milliseconds since the epoch.
    pub seen_at: f64,
    /// A team's page, not a board.
    #[serde(default)]
    pub team: bool,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// Every board this browser opened, newest first.
pub fn list() -> Vec<Visited> {
    storage()
        .and_then(|s| s.get_item(KEY).ok().flatten())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

fn save(boards: &[Visited]) {
    if let (Some(storage), Ok(text)) = (storage(), serde_json::to_string(boards)) {
        let _ = storage.set_item(KEY, &text);
    }
}

/// Notes that the board is open here now, with its title and phase.
pub fn remember(id: &str, title: &str, phase: Phase) {
    keep(id, title, phase.title(), false);
}

/// Notes that a team's page is open here now.
pub fn remember_team(id: &str, name: &str) {
    keep(id, name, "Team", true);
}

fn keep(id: &str, title: &str, phase: &str, team: bool) {
    let mut boards = list();
    if boards.first().is_some_and(|b| b.id == id && b.title == title && b.phase == phase) {
        return;
    }
    boards.retain(|b| b.id != id);
    let seen = Visited {
        id: id.to_owned(),
        title: title.to_owned(),
        phase: phase.to_owned(),
        seen_at: js_sys::Date::now(),
        team,
    };
    boards.insert(0, seen);
    boards.truncate(MAX_BOARDS);
    save(&boards);
}

/// Takes a board off the list (its link, identity and key stay where they are).
pub fn forget(id: &str) {
    let mut boards = list();
    boards.retain(|b| b.id != id);
    save(&boards);
}
