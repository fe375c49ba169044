//! HTTP calls about a board or a team (join, claim, export, alerts, the team's calls), forwarded
//! whole to the node that owns it: the owner runs them through its own router, as if the client
//! had called it, and the answer comes back as it was given.
//!
//! A call is matched by its path (`/api/boards/{id}/…`, `/api/teams/{id}/…`); everything else
//! (pages, assets, creating a board, health) is served by whichever node the client reached.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hindsight_shared::ids::DocumentId;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

use super::{Cluster, Located, next_message, wire};

/// How long a forwarded call may take, the owner's work included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The header that carries a call's head (method, path, headers; status and headers back).
const HEAD: &str = "Hs-Head";

/// Marks a call that was forwarded here: it is served here, never forwarded again.
#[derive(Debug, Clone, Copy)]
struct Forwarded;

#[derive(Debug, Serialize, Deserialize)]
struct CallHead {
    method: String,
    uri: String,
    headers: Vec<(String, String)>,
    /// The client's address as the first node saw it (per-address limits count it).
    client: Option<SocketAddr>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AnswerHead {
    status: u16,
    headers: Vec<(String, String)>,
}

/// The board or team a call is about, by its path.
fn subject_of(uri: &Uri) -> Option<DocumentId> {
    let mut segments = uri.path().trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next(), segments.next()) {
        (Some("api"), Some("boards" | "teams"), Some(id), Some(_)) => id.parse().ok(),
        _ => None,
    }
}

/// Middleware: serves a call here, or forwards it to the owner of what it is about.
pub async fn forward(State(cluster): State<Arc<Cluster>>, request: Request, next: Next) -> Response {
    let Some(id) = subject_of(request.uri()) else { return next.run(request).await };
    if request.extensions().get::<Forwarded>().is_some() {
        return next.run(request).await;
    }
    let node = match cluster.locate(id).await {
        Ok(Located::Here(_) | Located::Nowhere) => return next.run(request).await,
        Ok(Located::There(node)) => node,
        Err(e) => {
            tracing::warn!(error = %e, "could not find who serves a board");
            return unavailable("the board's server cannot be found now; try again");
        }
    };
    cluster.stats.http_forwarded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match call(&cluster, &node, request).await {
        Ok(response) => response,
        Err(response) => response,
    }
}

fn unavailable(message: &str) -> Response {
    let body = serde_json::json!({ "error": message });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

/// Sends the call to `node` and gives back its answer.
async fn call(cluster: &Cluster, node: &str, request: Request) -> Result<Response, Response> {
    let client = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, cluster.max_part).await.map_err(|_| {
        let body = serde_json::json!({ "error": "the request is too large" });
        (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
    })?;
    let head = CallHead {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
        client,
    };
    let mut headers = async_nats::HeaderMap::new();
    let head = serde_json::to_string(&head).map_err(|_| unavailable("the call could not be forwarded"))?;
    headers.insert(HEAD, head.as_str());
    let request = async_nats::Request::new().headers(headers).payload(body).timeout(Some(CALL_TIMEOUT));
    let answer = cluster.nats.send_request(wire::http_subject(node), request).await.map_err(|e| {
        tracing::warn!(node = %node, error = %e, "a forwarded call failed");
        unavailable("the board's server is not answering; try again")
    })?;
    let head: AnswerHead = answer
        .headers
        .as_ref()
        .and_then(|h| h.get(HEAD))
        .and_then(|v| serde_json::from_str(v.as_str()).ok())
        .ok_or_else(|| unavailable("the board's server answered nonsense"))?;
    let mut response = Response::new(Body::from(answer.payload));
    *response.status_mut() = StatusCode::from_u16(head.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in head.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

/// Serves the calls other nodes forward here, through this node's router.
pub(super) async fn serve(
    cluster: Arc<Cluster>,
    mut calls: async_nats::Subscriber,
    app: axum::Router,
    tracker: tokio_util::task::TaskTracker,
    shutdown: CancellationToken,
) {
    while let Some(message) = next_message(&mut calls, &shutdown).await {
        let (cluster, app) = (Arc::clone(&cluster), app.clone());
        tracker.spawn(async move {
            let Some(reply) = message.reply.clone() else { return };
            let (head, body) = answer(&cluster, app, message).await;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(HEAD, head.as_str());
            cluster.publish(&reply, headers, body).await;
        });
    }
}

/// Runs one forwarded call; returns the answer's head (JSON) and body.
async fn answer(cluster: &Cluster, mut app: axum::Router, message: async_nats::Message) -> (String, Bytes) {
    let failed = |status: StatusCode, error: &str| {
        let head =
            AnswerHead { status: status.as_u16(), headers: vec![("content-type".into(), "application/json".into())] };
        let body = serde_json::json!({ "error": error }).to_string();
        (serde_json::to_string(&head).unwrap_or_default(), Bytes::from(body))
    };
    let Some(head) = message
        .headers
        .as_ref()
        .and_then(|h| h.get(HEAD))
        .and_then(|v| serde_json::from_str::<CallHead>(v.as_str()).ok())
    else {
        return failed(StatusCode::BAD_REQUEST, "a forwarded call without its head");
    };
    let (Ok(method), Ok(uri)) = (Method::from_bytes(head.method.as_bytes()), head.uri.parse::<Uri>()) else {
        return failed(StatusCode::BAD_REQUEST, "a forwarded call with a bad method or path");
    };
    let mut request = Request::new(Body::from(message.payload));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    for (name, value) in head.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            request.headers_mut().append(name, value);
        }
    }
    request.extensions_mut().insert(Forwarded);
    if let Some(client) = head.client {
        request.extensions_mut().insert(ConnectInfo(client));
    }
    let Ok(response) = app.call(request).await;
    let (parts, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, cluster.max_part).await else {
        return failed(StatusCode::BAD_GATEWAY, "the answer is too large to forward; raise NATS's max_payload");
    };
    let head = AnswerHead {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
    };
    (serde_json::to_string(&head).unwrap_or_default(), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_about_a_board_or_a_team_are_matched_by_their_path() {
        let id = DocumentId::random();
        let about = |path: &str| subject_of(&path.parse::<Uri>().expect("a path"));
        assert_eq!(about(&format!("/api/boards/{id}/participants")), Some(id));
        assert_eq!(about(&format!("/api/boards/{id}/alerts/token")), Some(id));
        assert_eq!(about(&format!("/api/teams/{id}/export?format=md")), Some(id));
        assert_eq!(about("/api/boards"), None);
        assert_eq!(about(&format!("/b/{id}")), None);
        assert_eq!(about("/api/boards/not-an-id/participants"), None);
    }
}
