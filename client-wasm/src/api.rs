//! Calls to the server's JSON API.

use serde::{Deserialize, Serialize};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

#[derive(Serialize)]
struct CreateBoard<'a> {
    title: &'a str,
    template: &'a str,
}

/// The server's answer to a new board.
#[derive(Debug, Clone, Deserialize)]
pub struct BoardCreated {
    pub board_id: String,
    pub facilitator_key: String,
}

#[derive(Deserialize)]
struct ApiError {
    error: String,
}

/// Creates a board. The error is a sentence to show the user.
pub async fn create_board(title: &str, template: &str) -> Result<BoardCreated, String> {
    let body = serde_json::to_string(&CreateBoard { title, template }).map_err(|e| e.to_string())?;
    let text = post_json("/api/boards", &body).await.map_err(|_| "Could not reach the server.".to_owned())?;
    match text {
        (true, text) => serde_json::from_str(&text).map_err(|e| format!("Unexpected answer from the server: {e}")),
        (false, text) => Err(serde_json::from_str::<ApiError>(&text)
            .map(|e| e.error)
            .unwrap_or_else(|_| "The server could not create the board.".to_owned())),
    }
}

/// POSTs JSON; returns whether the status was a success, and the body.
async fn post_json(url: &str, body: &str) -> Result<(bool, String), JsValue> {
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(body));
    let request = Request::new_with_str_and_init(url, &init)?;
    request.headers().set("content-type", "application/json")?;
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let response: Response = JsFuture::from(window.fetch_with_request(&request)).await?.dyn_into()?;
    let text = JsFuture::from(response.text()?).await?.as_string().unwrap_or_default();
    Ok((response.ok(), text))
}

#[derive(Serialize)]
struct JoinBoard<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    facilitator_key: Option<&'a str>,
}

/// Who this browser is on a board, as the server said when it joined.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub participant_id: String,
    /// The secret id of this participant's desk document.
    pub desk_id: String,
    #[serde(default)]
    pub facilitator: bool,
}

/// Why joining failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinError {
    /// There is no such board.
    NoBoard,
    /// A sentence to show.
    Other(String),
}

/// Joins a board under a display name, as facilitator when the key is given.
pub async fn join_board(board: &str, name: &str, facilitator_key: Option<&str>) -> Result<Identity, JoinError> {
    let body =
        serde_json::to_string(&JoinBoard { name, facilitator_key }).map_err(|e| JoinError::Other(e.to_string()))?;
    let (ok, text) = post_json(&format!("/api/boards/{board}/participants"), &body)
        .await
        .map_err(|_| JoinError::Other("Could not reach the server.".into()))?;
    if ok {
        return serde_json::from_str(&text).map_err(|e| JoinError::Other(format!("Unexpected answer: {e}")));
    }
    let message = serde_json::from_str::<ApiError>(&text).map(|e| e.error).unwrap_or_default();
    if message.contains("no such board") {
        Err(JoinError::NoBoard)
    } else {
        Err(JoinError::Other(if message.is_empty() { "Could not join the board.".into() } else { message }))
    }
}

#[derive(Serialize)]
struct ClaimFacilitator<'a> {
    participant_id: &'a str,
    desk_id: &'a str,
    facilitator_key: &'a str,
}

/// Makes this participant (who proves who they are with their desk id) the facilitator, with
/// the facilitator key. The error is a sentence to show the user.
pub async fn claim_facilitator(board: &str, participant_id: &str, desk_id: &str, key: &str) -> Result<(), String> {
    let body = serde_json::to_string(&ClaimFacilitator { participant_id, desk_id, facilitator_key: key })
        .map_err(|e| e.to_string())?;
    match post_json(&format!("/api/boards/{board}/facilitator"), &body).await {
        Ok((true, _)) => Ok(()),
        Ok((false, text)) => Err(serde_json::from_str::<ApiError>(&text)
            .map(|e| e.error)
            .unwrap_or_else(|_| "The server did not hand over the facilitator role.".to_owned())),
        Err(_) => Err("Could not reach the server.".to_owned()),
    }
}
