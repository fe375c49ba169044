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
use hindsight_shared::api::{
    self, BoardCreated, ClaimFacilitator, CreateBoard, CreateTeam, ExportQuery, JoinBoard, JoinedBoard, ManageTeam,
    TeamCreated,
};
use hindsight_shared::ids::DocumentId;
use hindsight_shared::ledger::{self, MAX_TEAM_NAME_CHARS, Retro};
use hindsight_shared::postmortem::Layout;
use hindsight_shared::schema::{self, MAX_TITLE_CHARS};
use hindsight_shared::templates::{self, TEMPLATES, Template};
use hindsight_shared::{alerts, export};
use tokio_util::task::TaskTracker;

use crate::assets;
use crate::clients::{ClientKey, Clients, ConnectionGuard};
use crate::clock::now_ms;
use crate::config::Config;
use crate::connection::{self, ConnectionContext};
use crate::error::AppError;
use crate::key::{self, KeyHash};
use crate::registry::Registry;
use crate::store::{BoardRecord, DocKind, Store};
use crate::team::TeamMsg;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// What the routes need from the server around them, each part named.
#[derive(Debug)]
pub struct Services {
    pub config: Config,
    pub store: Store,
    /// The one way to reach a board (see [`crate::registry`]).
    pub registry: Arc<Registry>,
    /// What each WebSocket's task is given.
    pub connections: ConnectionContext,
    pub tracker: TaskTracker,
    pub clients: Clients,
    /// In cluster mode, this node's part of the cluster.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

#[derive(Debug)]
struct Shared {
    services: Services,
    /// One permit per open WebSocket, up to `--max-connections`.
    sockets: Arc<tokio::sync::Semaphore>,
    next_conn: AtomicU64,
}

impl std::ops::Deref for Shared {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}

impl AppState {
    pub fn new(services: Services) -> Self {
        let sockets = Arc::new(tokio::sync::Semaphore::new(services.config.max_connections));
        Self(Arc::new(Shared { services, sockets, next_conn: AtomicU64::new(1) }))
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
    // Webhook bodies are read up to four times their limit, so that a larger one is told so.
    let alert_body = axum::extract::DefaultBodyLimit::max(4 * alerts::MAX_PAYLOAD_BYTES);
    let cluster = state.0.cluster.clone();
    let router = Router::new()
        .route("/", get(page))
        .route("/b/{board_id}", get(board_page))
        .route("/api/boards", post(create_board))
        .route("/api/boards/{board_id}/participants", post(join_board))
        .route("/api/boards/{board_id}/facilitator", post(claim_facilitator))
        .route("/api/boards/{board_id}/export", get(export_board))
        .route("/api/boards/{board_id}/alerts/{token}", post(receive_alerts).layer(alert_body))
        .route("/api/teams", post(create_team))
        .route("/api/teams/{team_id}/boards", post(create_team_board))
        .route("/api/teams/{team_id}/manage", post(manage_team))
        .route("/api/teams/{team_id}/export", get(export_team))
        .route("/t/{team_id}", get(team_page))
        .route("/api/templates", get(list_templates))
        .route("/assets/{file}", get(asset))
        .route("/sw.js", get(service_worker))
        .route("/ws", get(websocket))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics));
    // In cluster mode, calls about a board another node owns go to that node.
    let router = match cluster {
        Some(cluster) => router.layer(middleware::from_fn_with_state(cluster, crate::cluster::http::forward)),
        None => router,
    };
    router
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

/// How long `/readyz` waits for the database to answer.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether this node can serve: `200` once its storage answers a round trip, else `503` saying
/// what does not answer. `/healthz` says only that the process runs.
async fn readyz(State(state): State<AppState>) -> Response {
    let storage = match tokio::time::timeout(READY_WITHIN, state.0.store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "storage does not answer /readyz");
            "unreachable".to_owned()
        }
        Err(_) => format!("no answer within {} s", READY_WITHIN.as_secs()),
    };
    let mut body = serde_json::json!({ "storage": storage });
    let mut ready = storage == "ok";
    if let Some(cluster) = &state.0.cluster {
        let nats = if cluster.connected() { "ok" } else { "unreachable" };
        ready &= nats == "ok" && !cluster.draining();
        body["nats"] = nats.into();
        body["node"] = cluster.node().into();
        if cluster.draining() {
            body["draining"] = true.into();
        }
    }
    body["ready"] = ready.into();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Prometheus metrics, in its text format: what this node holds and what its storage did. Counts
/// only: no id, no name, nothing a board holds.
async fn metrics(State(state): State<AppState>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let shared = &state.0;
    let stats = shared.store.stats();
    let open = shared.config.max_connections.saturating_sub(shared.sockets.available_permits());
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    };
    metric(
        "hindsight_boards_in_memory",
        "gauge",
        "Boards and team ledgers this node holds in memory.",
        shared.registry.len().to_string(),
    );
    metric("hindsight_websockets_open", "gauge", "WebSocket connections open on this node.", open.to_string());
    metric(
        "hindsight_store_commits_total",
        "counter",
        "Storage transactions committed.",
        stats.commits.load(Relaxed).to_string(),
    );
    metric(
        "hindsight_store_failed_commits_total",
        "counter",
        "Storage transactions that did not commit.",
        stats.failed_commits.load(Relaxed).to_string(),
    );
    metric(
        "hindsight_store_writes_total",
        "counter",
        "Writes in committed and failed transactions.",
        stats.writes.load(Relaxed).to_string(),
    );
    metric(
        "hindsight_store_commit_seconds_total",
        "counter",
        "Seconds spent in storage transactions, commit included.",
        format!("{:.6}", stats.commit_micros.load(Relaxed) as f64 / 1e6),
    );
    if let Some(cluster) = &shared.cluster {
        let c = &cluster.stats;
        let counters = [
            (
                "hindsight_cluster_frames_forwarded_total",
                "Client frames this node forwarded to boards' owners.",
                &c.frames_forwarded,
            ),
            (
                "hindsight_cluster_frames_returned_total",
                "Owners' frames this node handed to its clients.",
                &c.frames_returned,
            ),
            (
                "hindsight_cluster_http_forwarded_total",
                "HTTP calls this node forwarded to boards' owners.",
                &c.http_forwarded,
            ),
            ("hindsight_cluster_lease_renewals_total", "Times this node renewed its leases.", &c.lease_renewals),
            ("hindsight_cluster_leases_taken_total", "Leases this node took.", &c.leases_taken),
            (
                "hindsight_cluster_leases_lost_total",
                "Leases this node lost to another node or to time.",
                &c.leases_lost,
            ),
            (
                "hindsight_cluster_failovers_total",
                "Connections resumed here on a board this node took over.",
                &c.failovers,
            ),
        ];
        metric(
            "hindsight_cluster_boards_owned",
            "gauge",
            "Boards (or teams with their boards) this node owns.",
            cluster.owned().to_string(),
        );
        for (name, help, value) in counters {
            metric(name, "counter", help, value.load(Relaxed).to_string());
        }
    }
    let mut response = out.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn create_board(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<CreateBoard>, JsonRejection>,
) -> Result<(StatusCode, Json<BoardCreated>), AppError> {
    make_board(&state, &headers, peer_of(peer), body, None).await
}

/// Starts a retro of a team: the team lists it and hands it the open actions to review.
async fn create_team_board(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(team_id): Path<String>,
    body: Result<Json<CreateBoard>, JsonRejection>,
) -> Result<(StatusCode, Json<BoardCreated>), AppError> {
    let team: DocumentId = team_id.parse().map_err(|_| AppError::NotFound("there is no such team"))?;
    make_board(&state, &headers, peer_of(peer), body, Some(team)).await
}

/// Makes a board from a title and a template, in a team if `team` says so.
async fn make_board(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    body: Result<Json<CreateBoard>, JsonRejection>,
    team: Option<DocumentId>,
) -> Result<(StatusCode, Json<BoardCreated>), AppError> {
    if let Some(client) = state.client(headers, peer) {
        state.0.clients.create_board(client).map_err(|e| AppError::TooManyRequests(e.to_string()))?;
    }
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let title = checked_line(&request.title, "the board needs a title", "a title", MAX_TITLE_CHARS)?;
    let template: &Template = templates::find(&request.template).ok_or_else(|| {
        let known: Vec<&str> = TEMPLATES.iter().map(|t| t.id).collect();
        AppError::BadRequest(format!("unknown template `{}`; known: {}", request.template, known.join(", ")))
    })?;

    let id = DocumentId::random();
    let created_at_ms = now_ms();
    let team = match team {
        None => None,
        Some(team) => {
            let retro = Retro {
                id: id.to_string(),
                title: title.clone(),
                template: template.id.to_owned(),
                created_at: created_at_ms,
                ..Retro::default()
            };
            let review = state
                .0
                .registry
                .board(team)
                .await
                .ask_team(|reply| TeamMsg::NewBoard { retro, reply })
                .await
                .map_err(|e| AppError::Internal(e.into()))??;
            Some((team, review))
        }
    };
    let in_team = team.is_some();
    let (team, review) = match team {
        // The board names its team by a tag: its document reaches every participant, and the
        // team's id is the team's capability.
        Some((team, review)) => (Some(team), Some((team.tag().to_string(), review))),
        None => (None, None),
    };
    let facilitator_key = key::new_key();
    let doc = schema::new_board_document(automerge::ActorId::random(), &title, template, review)
        .map_err(|e| AppError::Internal(e.into()))?;
    let record = BoardRecord {
        id,
        created_at_ms,
        facilitator_key_hash: KeyHash::of(&facilitator_key),
        kind: DocKind::Board,
        team,
    };
    state.0.store.create_board(record, doc.save()).await?;
    tracing::info!(board = %id.tag(), template = template.id, in_team, "created board");
    let url = format!("{}{}", public_url(&state.0.config, headers), api::board_page(id));
    Ok((StatusCode::CREATED, Json(BoardCreated { board_id: id.to_string(), url, facilitator_key })))
}

/// A one-line text from a request, cleaned, not blank and at most `max` characters.
fn checked_line(text: &str, blank: &str, what: &str, max: usize) -> Result<String, AppError> {
    let line = schema::clean_line(text);
    if line.is_empty() {
        return Err(AppError::BadRequest(blank.into()));
    }
    if line.chars().count() > max {
        return Err(AppError::BadRequest(format!("{what} may have at most {max} characters")));
    }
    Ok(line)
}

/// Makes a team: its ledger, its link and its key.
async fn create_team(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<CreateTeam>, JsonRejection>,
) -> Result<(StatusCode, Json<TeamCreated>), AppError> {
    if let Some(client) = state.client(&headers, peer_of(peer)) {
        state.0.clients.create_board(client).map_err(|e| AppError::TooManyRequests(e.to_string()))?;
    }
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let name = checked_line(&request.name, "the team needs a name", "a team name", MAX_TEAM_NAME_CHARS)?;
    let id = DocumentId::random();
    let team_key = key::new_key();
    let doc =
        ledger::new_ledger_document(automerge::ActorId::random(), &name).map_err(|e| AppError::Internal(e.into()))?;
    let record = BoardRecord {
        id,
        created_at_ms: now_ms(),
        facilitator_key_hash: KeyHash::of(&team_key),
        kind: DocKind::Team,
        team: None,
    };
    state.0.store.create_board(record, doc.save()).await?;
    tracing::info!(team = %id.tag(), "created team");
    let url = format!("{}{}", public_url(&state.0.config, &headers), api::team_page(id));
    Ok((StatusCode::CREATED, Json(TeamCreated { team_id: id.to_string(), url, team_key })))
}

/// A team key holder renames the team, takes a retro out of it, or deletes it.
async fn manage_team(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(team_id): Path<String>,
    body: Result<Json<ManageTeam>, JsonRejection>,
) -> Result<StatusCode, AppError> {
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    // Guessing a key costs a join's worth of the address's allowance.
    let team = board_to_join(&state, &headers, peer, &team_id)?;
    let ManageTeam { team_key: key, change } = request;
    state
        .0
        .registry
        .board(team)
        .await
        .ask_team(|reply| TeamMsg::Manage { key, change, reply })
        .await
        .map_err(|e| AppError::Internal(e.into()))??;
    tracing::info!(team = %team.tag(), "a team key holder changed the team");
    Ok(StatusCode::NO_CONTENT)
}

/// An Alertmanager or Grafana webhook: its alerts join the board's timeline. The URL's token is
/// the capability (403 without it); a bad payload is 400 with what is wrong; a board takes at
/// most 60 payloads a minute (429).
async fn receive_alerts(
    State(state): State<AppState>,
    Path((board_id, token)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), AppError> {
    let board: DocumentId = board_id.parse().map_err(|_| AppError::NotFound("there is no such board"))?;
    let events = alerts::read_payload(&body).map_err(AppError::BadRequest)?;
    let sent = events.len();
    let added =
        state.0.registry.board(board).await.alert(token, events).await.map_err(|e| AppError::Internal(e.into()))??;
    tracing::info!(board = %board.tag(), sent, added, "alerts reached a board's timeline");
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "events": sent, "added": added }))))
}

/// The team's actions as CSV or Markdown, or the whole ledger as JSON.
async fn export_team(
    State(state): State<AppState>,
    Path(team_id): Path<String>,
    Query(query): Query<ExportQuery>,
) -> Result<Response, AppError> {
    let format = export::Format::parse(&query.format)
        .filter(|f| *f != export::Format::Html)
        .ok_or_else(|| AppError::BadRequest(format!("unknown format `{}`; use md, csv or json", query.format)))?;
    let team: DocumentId = team_id.parse().map_err(|_| AppError::NotFound("there is no such team"))?;
    let ledger = state
        .0
        .registry
        .board(team)
        .await
        .ask_team(|reply| TeamMsg::Snapshot { reply })
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .ok_or(AppError::NotFound("there is no such team"))?;
    let body = export::render_team(&ledger, format, &ledger::iso_day(now_ms()));
    let file_name = export::team_file_name(&ledger, format);
    Ok(exported(body, format, Some(file_name)))
}

/// Joins a board: the board itself checks the name and the key, makes the desk and takes the
/// participant in (see [`crate::board::BoardMsg::Join`]).
async fn join_board(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(board_id): Path<String>,
    body: Result<Json<JoinBoard>, JsonRejection>,
) -> Result<(StatusCode, Json<JoinedBoard>), AppError> {
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let board = board_to_join(&state, &headers, peer, &board_id)?;
    let joined = state.0.registry.board(board).await.join(request).await?;
    tracing::info!(board = %board.tag(), facilitator = joined.facilitator, "a participant joined");
    Ok((StatusCode::CREATED, Json(joined)))
}

/// A participant who holds the key takes the facilitator role, from any device they joined on.
async fn claim_facilitator(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Path(board_id): Path<String>,
    body: Result<Json<ClaimFacilitator>, JsonRejection>,
) -> Result<StatusCode, AppError> {
    let Json(request) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    // Guessing a key costs a join's worth of the address's allowance.
    let board = board_to_join(&state, &headers, peer, &board_id)?;
    state.0.registry.board(board).await.claim(request).await?;
    tracing::info!(board = %board.tag(), "the facilitator role was taken with the key");
    Ok(StatusCode::NO_CONTENT)
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
    let layout = match query.layout.as_deref() {
        None => Layout::default(),
        Some(key) => {
            Layout::parse(key).ok_or_else(|| AppError::BadRequest(format!("unknown layout `{key}`; use sre or cmr")))?
        }
    };
    let board: DocumentId = board_id.parse().map_err(|_| AppError::NotFound("there is no such board"))?;
    let board = state
        .0
        .registry
        .board(board)
        .await
        .snapshot()
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .ok_or(AppError::NotFound("there is no such board"))?;
    let body = export::render_as(&board, format, layout);
    let file_name = (format != export::Format::Html).then(|| export::file_name(&board, format));
    Ok(exported(body, format, file_name))
}

/// An export's response: its type, never cached, inert, and a download when it has a file name.
fn exported(body: String, format: export::Format, file_name: Option<String>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(EXPORT_POLICY));
    if let Some(value) =
        file_name.and_then(|name| HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).ok())
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// The board a join (or a claim of the facilitator role) names, once the client's address is
/// within its joins per minute.
fn board_to_join(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    board_id: &str,
) -> Result<DocumentId, AppError> {
    if let Some(client) = state.client(headers, peer_of(peer)) {
        state.0.clients.join(client).map_err(|e| AppError::TooManyRequests(e.to_string()))?;
    }
    board_id.parse().map_err(|_| AppError::NotFound("there is no such board"))
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
    let exists = state.0.store.board(id).await?.is_some_and(|r| r.kind == DocKind::Board);
    Ok(shell(if exists { StatusCode::OK } else { StatusCode::NOT_FOUND }))
}

/// The team page: the same shell, with 404 for a team that does not exist.
async fn team_page(State(state): State<AppState>, Path(team_id): Path<String>) -> Result<Response, AppError> {
    let Ok(id) = team_id.parse::<DocumentId>() else {
        return Ok(shell(StatusCode::NOT_FOUND));
    };
    let exists = state.0.store.board(id).await?.is_some_and(|r| r.kind == DocKind::Team);
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
