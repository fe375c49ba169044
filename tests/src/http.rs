//! A tiny HTTP/1.1 client over a plain TCP stream: one request per connection, enough to drive
//! the JSON API and fetch pages, and free to send malformed bodies a real client would refuse.

use anyhow::{Context, bail};
use hindsight_shared::api;
use hindsight_shared::ids::DocumentId;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::within;

/// What `POST /api/boards` answers ([`api::BoardCreated`]), with the board id already parsed.
#[derive(Debug, Clone)]
pub struct BoardCreated {
    pub board_id: DocumentId,
    pub url: String,
    pub facilitator_key: String,
}

/// A whole HTTP response: status, headers (names lowercased) and body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy: a test only reads it).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("the body is not the expected JSON: {}", self.text()))
    }
}

/// `GET url`.
pub async fn get(url: &str) -> anyhow::Result<HttpResponse> {
    request("GET", url, &[], None).await
}

/// `GET url` with extra request headers (`("Accept-Encoding", "br")`).
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> anyhow::Result<HttpResponse> {
    request("GET", url, headers, None).await
}

/// `POST url` with a body of the given content type.
pub async fn post(url: &str, content_type: &str, body: &[u8]) -> anyhow::Result<HttpResponse> {
    request("POST", url, &[], Some((content_type, body))).await
}

/// `POST url` with a JSON body.
pub async fn post_json(url: &str, body: &serde_json::Value) -> anyhow::Result<HttpResponse> {
    post(url, "application/json", body.to_string().as_bytes()).await
}

/// Creates a board through `POST /api/boards` on the server at `base` and expects `201 Created`.
pub async fn create_board(base: &str, title: &str, template: &str) -> anyhow::Result<BoardCreated> {
    let request = api::CreateBoard { title: title.to_owned(), template: template.to_owned() };
    let response = post_json(&format!("{base}{}", api::BOARDS), &serde_json::to_value(request)?).await?;
    if response.status != 201 {
        bail!("creating a board answered {} {}", response.status, response.text());
    }
    let answer: api::BoardCreated = response.json()?;
    let board_id = answer.board_id.parse().with_context(|| format!("`{}` is not a document id", answer.board_id))?;
    Ok(BoardCreated { board_id, url: answer.url, facilitator_key: answer.facilitator_key })
}

/// The URLs of the client's files (`http://.../assets/<name>-<hash>.<ext>`) that the page of the
/// server at `base` loads, each once, as a browser finds them; an error if the server has no built
/// client.
pub async fn asset_urls(base: &str) -> anyhow::Result<Vec<String>> {
    let page = get(&format!("{base}/")).await?;
    let mut urls: Vec<String> = Vec::new();
    for path in page.text().split('"').filter(|token| token.starts_with("/assets/")) {
        let url = format!("{base}{path}");
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    if urls.is_empty() {
        bail!("the page loads no assets: build the client first (`./justw client`)");
    }
    Ok(urls)
}

/// What `POST /api/boards/{id}/participants` answers ([`api::JoinedBoard`]), with the desk id
/// already parsed.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Public: shown in presence.
    pub participant_id: String,
    /// Secret: the participant's desk document; whoever syncs it is this participant.
    pub desk_id: DocumentId,
    pub facilitator: bool,
}

/// `POST /api/boards/{board}/participants` with a name and maybe a facilitator key, as it answers.
pub async fn post_join(
    base: &str,
    board: &str,
    name: &str,
    facilitator_key: Option<&str>,
) -> anyhow::Result<HttpResponse> {
    let request = api::JoinBoard { name: name.to_owned(), facilitator_key: facilitator_key.map(str::to_owned) };
    post_json(&format!("{base}{}", api::participants(board)), &serde_json::to_value(request)?).await
}

/// Joins a board through the HTTP API and expects `201 Created`.
pub async fn join_board(
    base: &str,
    board: DocumentId,
    name: &str,
    facilitator_key: Option<&str>,
) -> anyhow::Result<Joined> {
    let response = post_join(base, &board.to_string(), name, facilitator_key).await?;
    if response.status != 201 {
        bail!("joining a board answered {} {}", response.status, response.text());
    }
    let answer: api::JoinedBoard = response.json()?;
    let desk_id = answer.desk_id.parse().with_context(|| format!("`{}` is not a document id", answer.desk_id))?;
    Ok(Joined { participant_id: answer.participant_id, desk_id, facilitator: answer.facilitator })
}

async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> anyhow::Result<HttpResponse> {
    let rest = url.strip_prefix("http://").with_context(|| format!("`{url}` is not an http:// URL"))?;
    let (host, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    within(&format!("{method} {url}"), async {
        let mut stream = TcpStream::connect(host).await.with_context(|| format!("could not connect to {host}"))?;
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some((content_type, bytes)) = body {
            head.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", bytes.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        if let Some((_, bytes)) = body {
            stream.write_all(bytes).await?;
        }
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.context("could not read the response")?;
        parse_response(&raw)
    })
    .await
}

fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("the response has no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).context("the response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("bad status line `{status_line}`"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut response = HttpResponse { status, headers, body: raw[end + 4..].to_vec() };
    if response.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        response.body = dechunk(&response.body)?;
    }
    Ok(response)
}

/// Decodes a `Transfer-Encoding: chunked` body.
fn dechunk(mut body: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").context("a chunk has no size line")?;
        let size_text = std::str::from_utf8(&body[..line_end])?.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).with_context(|| format!("bad chunk size `{size_text}`"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = body.get(..size).context("a chunk is shorter than its size")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).context("a chunk lacks its line end")?;
    }
}
