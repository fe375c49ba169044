//! Calls to the server's JSON API with `fetch`; the routes and bodies are `shared::api`'s.

use hindsight_shared::api::{self, ApiError, BoardCreated, ClaimFacilitator, CreateBoard, JoinBoard};
use serde::Serialize;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

/// Who this browser is on a board, as the server said when it joined (kept in `localStorage`).
pub type Identity = api::JoinedBoard;

/// Why joining failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// There is no such board (the server answered 404).
    NoBoard,
    /// A sentence to show.
    Other(String),
}

/// An answer: its HTTP status and body.
struct Answer {
    status: u16,
    text: String,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The server's sentence for a failure, or `fallback` if it gave none.
    fn error(&self, fallback: &str) -> String {
        serde_json::from_str::<ApiError>(&self.text).map_or_else(|_| fallback.to_owned(), |e| e.error)
    }
}

/// Creates a board. The error is a sentence to show the user.
pub async fn create_board(title: &str, template: &str) -> Result<BoardCreated, String> {
    let request = CreateBoard { title: title.to_owned(), template: template.to_owned() };
    let answer = post_json(api::BOARDS, &request).await.map_err(|_| "Could not reach the server.".to_owned())?;
    if answer.ok() {
        serde_json::from_str(&answer.text).map_err(|e| format!("Unexpected answer from the server: {e}"))
    } else {
        Err(answer.error("The server could not create the board."))
    }
}

/// Creates a team. The error is a sentence to show the user.
pub async fn create_team(name: &str) -> Result<api::TeamCreated, String> {
    let request = api::CreateTeam { name: name.to_owned() };
    let answer = post_json(api::TEAMS, &request).await.map_err(|_| "Could not reach the server.".to_owned())?;
    if answer.ok() {
        serde_json::from_str(&answer.text).map_err(|e| format!("Unexpected answer from the server: {e}"))
    } else {
        Err(answer.error("The server could not create the team."))
    }
}

/// Starts a retro of a team. The error is a sentence to show the user.
pub async fn create_team_board(team: &str, title: &str, template: &str) -> Result<BoardCreated, String> {
    let request = CreateBoard { title: title.to_owned(), template: template.to_owned() };
    let answer =
        post_json(&api::team_boards(team), &request).await.map_err(|_| "Could not reach the server.".to_owned())?;
    if answer.ok() {
        serde_json::from_str(&answer.text).map_err(|e| format!("Unexpected answer from the server: {e}"))
    } else {
        Err(answer.error("The server could not start the retro."))
    }
}

/// Changes a team with its key. The error is a sentence to show the user.
pub async fn manage_team(team: &str, key: &str, change: api::TeamChange) -> Result<(), String> {
    let request = api::ManageTeam { team_key: key.to_owned(), change };
    match post_json(&api::team_manage(team), &request).await {
        Ok(answer) if answer.ok() => Ok(()),
        Ok(answer) => Err(answer.error("The server did not change the team.")),
        Err(_) => Err("Could not reach the server.".to_owned()),
    }
}

/// Joins a board under a display name, as facilitator when the key is given.
pub async fn join_board(board: &str, name: &str, facilitator_key: Option<&str>) -> Result<Identity, JoinError> {
    let request = JoinBoard { name: name.to_owned(), facilitator_key: facilitator_key.map(str::to_owned) };
    let answer = post_json(&api::participants(board), &request)
        .await
        .map_err(|_| JoinError::Other("Could not reach the server.".into()))?;
    match answer.status {
        _ if answer.ok() => {
            serde_json::from_str(&answer.text).map_err(|e| JoinError::Other(format!("Unexpected answer: {e}")))
        }
        404 => Err(JoinError::NoBoard),
        _ => Err(JoinError::Other(answer.error("Could not join the board."))),
    }
}

/// Makes this participant (who proves who they are with their desk id) the facilitator, with
/// the facilitator key. The error is a sentence to show the user.
pub async fn claim_facilitator(board: &str, participant_id: &str, desk_id: &str, key: &str) -> Result<(), String> {
    let request = ClaimFacilitator {
        participant_id: participant_id.to_owned(),
        desk_id: desk_id.to_owned(),
        facilitator_key: key.to_owned(),
    };
    match post_json(&api::facilitator(board), &request).await {
        Ok(answer) if answer.ok() => Ok(()),
        Ok(answer) => Err(answer.error("The server did not hand over the facilitator role.")),
        Err(_) => Err("Could not reach the server.".to_owned()),
    }
}

/// POSTs `body` as JSON; the answer, whatever its status.
async fn post_json(url: &str, body: &impl Serialize) -> Result<Answer, JsValue> {
    let body = serde_json::to_string(body).map_err(|e| JsValue::from_str(&e.to_string()))?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(&body));
    let request = Request::new_with_str_and_init(url, &init)?;
    request.headers().set("content-type", "application/json")?;
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request)).await?.dyn_into()?;
    let text = JsFuture::from(response.text()?).await?.as_string().unwrap_or_default();
    Ok(Answer { status: response.status(), text })
}
