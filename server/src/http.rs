//! HTTP routes: the JSON API, the pages and assets of the browser client, and the WebSocket upgrade.
//!
//! Every response carries the security headers ([`security_headers`]); every request is answered
//! within `--http-timeout-secs` or dropped; board creation, joining and WebSockets are limited per
//! client address ([`crate::clients`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::rejection::JsonRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hindsight_shared::export;
use hindsight_shared::ids::{DocumentId, random_token};
use hindsight_shared::schema::{self, MAX_NAME_CHARS, MAX_TITLE_CHARS};
use hindsight_shared::templates::{self, TEMPLATES, Template};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::task::TaskTracker;

use crate::assets;
use crate::board::BoardMsg;
use crate::board::actor::now_ms;
use crate::board::desk::Participant;
use crate::clients::{ClientKey, Clients, ConnectionGuard};
use crate::config::Config;
use crate::connection::{self, ConnectionContext};
use crate::error::AppError;
use crate::store::{BoardRecord, ParticipantRecord, Store};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub store: Store,
    pub connections: ConnectionContext,
    pub tracker: TaskTracker,
    pub clients: Clients,
    /// One permit per open WebSocket, up to `--max-connections`.
    sockets: Arc<tokio::sync::Semaphore>,
    next_conn: AtomicU64,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        connections: ConnectionContext,
        tracker: TaskTracker,
        clients: Clients,
    ) -> Self {
        let sockets = Arc::new(tokio::sync::Semaphore::new(config.max_connections));
        Self(Arc::new(Shared { config, store, connections, tracker, clients, sockets, next_conn: AtomicU64::new(1) }))
    }

    /// The client a request comes from, as the per-address limits count it: the address the
    /// configured proxy header names, else the socket's peer.
    fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<ClientKey> {
        if let Some(name) = &self.0.config.client_ip_header {
            let value = headers.get(name.as_str())?.to_str().ok()?;
            // X-Forwarded-For lists every hop; the proxy we trust appended the last one.
            let last = value.rsplit(',').next()?.trim();
            return last.parse::<std::net::IpAddr>().ok().map(ClientKey::from);
        }
        peer.map(|peer| ClientKey::from(peer.ip()))
    }
}

/// The address of the socket a request came on, if the accept loop gave it (tests that drive the
/// router directly do not).
fn peer_of(request_peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>) -> Option<SocketAddr> {
    request_peer.map(|axum::Extension(ConnectInfo(addr))| addr)
}

/// Every route of the server.
pub fn router(state: AppState) -> Router {
    let timeout = state.0.config.http_timeout();
    Router::new()
        .route("/", get(page))
        .route("/b/{board_id}", get(board_page))
        .route("/api/boards", post(create_board))
        .route("/api/boards/{board_id}/participants", post(join_board))
        .route("/api/boards/{board_id}/facilitator", post(claim_facilitator))
        .route("/api/boards/{board_id}/export", get(export_board))
        .route("/api/templates", get(list_templates))
        .route("/assets/{file}", get(asset))
        .route("/sw.js", get(service_worker))
        .route("/ws", get(websocket))
        .route("/healthz", get(|| async { "ok" }))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn(move |request: Request, next: Next| answer_within(timeout, request, next)))
        .with_state(state)
}

/// The Content-Security-Policy of the app's pages: scripts only from here (and the inline loader
/// by its hash), WebAssembly allowed, nothing framed, nothing framing the app.
fn page_policy() -> String {
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' '{}'; style-src 'self'; \
         style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; worker-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        assets::INLINE_SCRIPT_HASH
    )
}

/// The Content-Security-Policy of an exported page: its own inline styles, nothing else.
const EXPORT_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds the headers every response carries: no framing (clickjacking a facilitator), no sniffing,
/// no referrer (a board link is its only secret), and a Content-Security-Policy on pages.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    let is_html =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    if is_html
        && !headers.contains_key(header::CONTENT_SECURITY_POLICY)
        && let Ok(policy) = HeaderValue::from_str(&page_policy())
    {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'none'"));
    }
    response
}

/// Answers a request within `limit` (a client that trickles its body holds nothing longer), or
/// says 408.
async fn answer_within(limit: std::time::Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => AppError::Timeout.into_response(),
    }
}

/// The body of `POST /api/boards`.
#[derive(Debug, Deserialize)]
pub struct CreateBoard {
    pub title: String,
    pub template: String,
}

/// The answer to `POST /api/boards`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BoardCreated {
    pub board_id: String,
    /// The link to share with participants.
    pub url: String,
    /// The secret that grants facilitator rights. Shown once; only its hash is stored.
    pub facilitator_key: String,
}

async fn create_board(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<CreateBoard>, JsonRejection>,
) -> Result<(StatusCode, Json<BoardCreated>), AppError> {
    if let Some(client) = state.client(&headers, peer_of(peer)) {
        state.0.clients.create_board(client).map_err(|e| AppError::TooManyRequests(e.to_string()))?;
    }
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let title = schema::clean_line(&request.title);
    let title = title.as_str();
    if title.is_empty() {
        return Err(AppError::BadRequest("the board needs a title".into()));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(AppError::BadRequest(format!("a title may have at most {MAX_TITLE_CHARS} characters")));
    }
    let template: &Template = templates::find(&request.template).ok_or_else(|| {
        let known: Vec<&str> = TEMPLATES.iter().map(|t| t.id).collect();
        AppError::BadRequest(format!("unknown template `{}`; known: {}", request.template, known.join(", ")))
    })?;

    let id = DocumentId::random();
    let facilitator_key = random_token::<16>();
    let doc = schema::new_board_document(automerge::ActorId::random(), title, template)
        .map_err(|e| AppError::Internal(e.into()))?;
    let record = BoardRecord {
        id,
        created_at_ms: now_ms(),
        facilitator_key_hash: Sha256::digest(facilitator_key.as_bytes()).into(),
    };
    state.0.store.create_board(record, doc.save()).await?;
    tracing::info!(board = %id.tag(), template = template.id, "created board");
    let url = format!("{}/b/{id}", public_url(&state.0.config, &headers));
    Ok((StatusCode::CREATED, Json(BoardCreated { board_id: id.to_string(), url, facilitator_key })))
}

/// The body of `POST /api/boards/{board_id}/participants`.
#[derive(Debug, Deserialize)]
pub struct JoinBoard {
    /// The display name to show others; may be empty.
    #[serde(default)]
    pub name: String,
    /// The board's facilitator key, to join as its facilitator.
    #[serde(default)]
    pub facilitator_key: Option<String>,
}

/// The answer to joining: who you are on this board, and your desk. Keep `desk_id` secret:
/// whoever syncs that document is you.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinedBoard {
    pub participant_id: String,
    pub desk_id: String,
    pub facilitator: bool,
}

async fn join_board(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(board_id): Path<String>,
    body: Result<Json<JoinBoard>, JsonRejection>,
) -> Result<(StatusCode, Json<JoinedBoard>), AppError> {
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let (board, record) = board_to_join(&state, &headers, peer, &board_id).await?;
    // Names show in everyone's roster: no control or direction-override characters.
    let name = schema::clean_line(&request.name);
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::BadRequest(format!("a name may have at most {MAX_NAME_CHARS} characters")));
    }
    let facilitator = match &request.facilitator_key {
        None => false,
        Some(key) if holds_key(&record, key) => true,
        Some(_) => return Err(AppError::Forbidden("the facilitator key does not match this board")),
    };

    let participant = Participant { id: random_token::<9>(), name, desk: DocumentId::random() };
    let desk =
        schema::new_desk_document(automerge::ActorId::random()).map_err(|e| AppError::Internal(e.into()))?.save();
    let stored = ParticipantRecord {
        board,
        id: participant.id.clone(),
        name: participant.name.clone(),
        desk: participant.desk,
        joined_at_ms: now_ms(),
    };
    state.0.store.create_participant(stored, desk.clone(), state.0.config.max_participants_per_board).await?;
    let registry = &state.0.connections.registry;
    registry.remember_desk(participant.desk, board);
    let joined =
        JoinedBoard { participant_id: participant.id.clone(), desk_id: participant.desk.to_string(), facilitator };
    let (reply, answer) = tokio::sync::oneshot::channel();
    registry
        .board(board)
        .send(BoardMsg::Joined { participant, desk, facilitator, reply })
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    answer
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|e| AppError::Internal(anyhow::anyhow!("the board refused a participant: {e}")))?;
    tracing::info!(board = %board.tag(), facilitator, "a participant joined");
    Ok((StatusCode::CREATED, Json(joined)))
}

/// The body of `POST /api/boards/{board_id}/facilitator`: a participant who holds the key
/// takes the facilitator role, from any device they joined on.
#[derive(Debug, Deserialize)]
pub struct ClaimFacilitator {
    pub participant_id: String,
    /// The participant's desk id: the secret that proves they are that participant.
    pub desk_id: String,
    pub facilitator_key: String,
}

async fn claim_facilitator(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(board_id): Path<String>,
    body: Result<Json<ClaimFacilitator>, JsonRejection>,
) -> Result<StatusCode, AppError> {
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    // Guessing a key costs a join's worth of the address's allowance.
    let (board, record) = board_to_join(&state, &headers, peer, &board_id).await?;
    if !holds_key(&record, &request.facilitator_key) {
        return Err(AppError::Forbidden("the facilitator key does not match this board"));
    }
    let desk: DocumentId =
        request.desk_id.parse().map_err(|_| AppError::Forbidden("you have not joined this board"))?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    state
        .0
        .connections
        .registry
        .board(board)
        .send(BoardMsg::Claim { participant: request.participant_id, desk, reply })
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    answer
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|_| AppError::Forbidden("you have not joined this board"))?;
    tracing::info!(board = %board.tag(), "the facilitator role was taken with the key");
    Ok(StatusCode::NO_CONTENT)
}

/// The query of `GET /api/boards/{board_id}/export`.
#[derive(Debug, Deserialize)]
pub struct ExportQuery {
    /// `md`, `csv`, `json` or `html` (printable).
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    "md".into()
}

/// The board as Markdown, CSV, JSON or a printable page. Anyone with the board's link may read
/// it, as they may read the board; anonymous notes stay anonymous.
async fn export_board(
    State(state): State<AppState>,
    Path(board_id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, AppError> {
    let format = export::Format::parse(&query.format)
        .ok_or_else(|| AppError::BadRequest(format!("unknown format `{}`; use md, csv, json or html", query.format)))?;
    let board: DocumentId = board_id.parse().map_err(|_| AppError::NotFound("there is no such board"))?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    state
        .0
        .connections
        .registry
        .board(board)
        .send(BoardMsg::Snapshot { reply })
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let board =
        answer.await.map_err(|e| AppError::Internal(e.into()))?.ok_or(AppError::NotFound("there is no such board"))?;
    let body = export::render(&board, format);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(EXPORT_POLICY));
    if format != export::Format::Html {
        let disposition = format!("attachment; filename=\"{}\"", export::file_name(&board, format));
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// The board a join (or a claim of the facilitator role) names, once the client's address is
/// within its joins per minute.
async fn board_to_join(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    board_id: &str,
) -> Result<(DocumentId, BoardRecord), AppError> {
    if let Some(client) = state.client(headers, peer_of(peer)) {
        state.0.clients.join(client).map_err(|e| AppError::TooManyRequests(e.to_string()))?;
    }
    let board: DocumentId = board_id.parse().map_err(|_| AppError::NotFound("there is no such board"))?;
    let record = state.0.store.board(board).await?.ok_or(AppError::NotFound("there is no such board"))?;
    Ok((board, record))
}

/// True if `key` is the board's facilitator key.
fn holds_key(record: &BoardRecord, key: &str) -> bool {
    same_hash(&Sha256::digest(key.as_bytes()).into(), &record.facilitator_key_hash)
}

/// Compares two digests in constant time.
fn same_hash(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The server's public URL: the configured one, else `http://` and the request's Host.
fn public_url(config: &Config, headers: &HeaderMap) -> String {
    if let Some(url) = &config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1:3000");
    format!("http://{host}")
}

async fn list_templates() -> Json<&'static [Template]> {
    Json(TEMPLATES)
}

/// The page shell. The board link is the board's only secret, so pages ask browsers not to leak
/// it in `Referer` headers.
fn shell(status: StatusCode) -> Response {
    let mut response = (status, Html(assets::INDEX_HTML)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn page() -> Response {
    shell(StatusCode::OK)
}

/// The board page: the same shell, with 404 for a board that does not exist (the client then
/// says so).
async fn board_page(State(state): State<AppState>, Path(board_id): Path<String>) -> Result<Response, AppError> {
    let Ok(id) = board_id.parse::<DocumentId>() else {
        return Ok(shell(StatusCode::NOT_FOUND));
    };
    let exists = state.0.store.board(id).await?.is_some();
    Ok(shell(if exists { StatusCode::OK } else { StatusCode::NOT_FOUND }))
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Result<Response, AppError> {
    let asset = assets::find(&format!("/assets/{file}")).ok_or(AppError::NotFound("no such asset"))?;
    let accept: Vec<&str> = headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).collect();
    let (body, encoding) = asset.negotiate(&accept);
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if encoding != assets::Encoding::Identity {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.name()));
    }
    Ok(response)
}

async fn service_worker() -> Response {
    let mut response = assets::SERVICE_WORKER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/javascript; charset=utf-8"));
    // Browsers check for a new worker on each visit; never serve a stale one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn websocket(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    tcp_guard: Option<axum::Extension<Arc<ConnectionGuard>>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let shared = &state.0;
    // Behind a proxy, sockets are counted per client address here (without one, the accept loop
    // counts every connection by its peer address).
    let client_guard = match shared.config.client_ip_header.as_ref().and(state.client(&headers, peer_of(peer))) {
        Some(client) => match shared.clients.connect(client) {
            Ok(guard) => Some(guard),
            Err(refused) => {
                let body = serde_json::json!({ "error": refused.to_string() });
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        },
        None => None,
    };
    let Ok(permit) = Arc::clone(&shared.sockets).try_acquire_owned() else {
        tracing::warn!(limit = shared.config.max_connections, "refused a connection: the server is full");
        let full = serde_json::json!({ "error": "the server is full; try again soon" });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(full)).into_response();
    };
    let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let ctx = shared.connections.clone();
    let tracker = shared.tracker.clone();
    upgrade
        // Small buffers keep an idle connection cheap; messages larger than the limit are refused.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(shared.config.max_message_bytes)
        .max_frame_size(shared.config.max_message_bytes)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                connection::serve(socket, conn, ctx).await;
                drop((permit, client_guard, tcp_guard));
            })
        })
}
