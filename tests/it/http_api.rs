//! The HTTP surface: creating boards and joining them (and every way to get either wrong), the
//! template list, board pages for known and unknown boards, the health check, and the client's
//! files in the coding each client accepts (issue 12).

use std::collections::BTreeSet;
use std::io::Read as _;

use anyhow::Context as _;
use hindsight_shared::api;
use hindsight_shared::ids::DocumentId;
use hindsight_tests::{SyncPeer, TestServer, http};
use serde_json::json;

const TEMPLATE_IDS: [&str; 6] =
    ["start-stop-continue", "mad-sad-glad", "4ls", "sailboat", "went-well", "incident-postmortem"];

#[tokio::test]
async fn creating_a_board_answers_201_with_an_id_a_link_and_a_key() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let response = http::post_json(
        &format!("{}{}", server.http_url(), api::BOARDS),
        &json!({"title": "Sprint 9", "template": "4ls"}),
    )
    .await?;
    assert_eq!(response.status, 201, "{}", response.text());
    assert!(response.header("content-type").is_some_and(|t| t.starts_with("application/json")));
    let body: serde_json::Value = response.json()?;
    let id = body["board_id"].as_str().expect("board_id is a string");
    let parsed: DocumentId = id.parse().expect("board_id is an automerge-repo document id");
    assert_eq!(parsed.to_string(), id);
    let url = body["url"].as_str().expect("url is a string");
    assert_eq!(url, format!("{}/b/{id}", server.http_url()));
    assert!(!body["facilitator_key"].as_str().expect("facilitator_key is a string").is_empty());

    let page = http::get(url).await?;
    assert_eq!(page.status, 200);
    assert!(page.header("content-type").is_some_and(|t| t.starts_with("text/html")), "{:?}", page.headers);
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn two_boards_get_different_unguessable_ids_and_keys() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let a = server.create_board("Retro A", "sailboat").await;
    let b = server.create_board("Retro A", "sailboat").await;
    assert_ne!(a.board_id, b.board_id);
    assert_ne!(a.facilitator_key, b.facilitator_key);
    // 16 random bytes each: the ids share no long prefix, and the key is not the id.
    assert_ne!(a.board_id.as_bytes()[..8], b.board_id.as_bytes()[..8]);
    assert_ne!(a.facilitator_key, a.board_id.to_string());
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bad_board_requests_get_400_with_a_json_error() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let boards = format!("{}{}", server.http_url(), api::BOARDS);

    let unknown = http::post_json(&boards, &json!({"title": "Retro", "template": "kanban"})).await?;
    assert_eq!(unknown.status, 400, "an unknown template: {}", unknown.text());
    let error = unknown.json::<serde_json::Value>()?["error"].as_str().expect("an error string").to_owned();
    assert!(error.contains("kanban"), "the error names the bad template: {error}");
    for id in TEMPLATE_IDS {
        assert!(error.contains(id), "the error lists the known template `{id}`: {error}");
    }

    let broken = http::post(&boards, "application/json", b"{\"title\": \"Retro\", ").await?;
    assert_eq!(broken.status, 400, "broken JSON: {}", broken.text());
    assert!(broken.json::<serde_json::Value>()?["error"].is_string(), "broken JSON: {}", broken.text());

    let missing = http::post_json(&boards, &json!({"title": "Retro"})).await?;
    assert_eq!(missing.status, 400, "a missing template: {}", missing.text());
    assert!(missing.json::<serde_json::Value>()?["error"].is_string());

    for title in ["", "   "] {
        let empty = http::post_json(&boards, &json!({"title": title, "template": "4ls"})).await?;
        assert_eq!(empty.status, 400, "the title {title:?}: {}", empty.text());
        assert!(empty.json::<serde_json::Value>()?["error"].is_string());
    }

    let long = http::post_json(&boards, &json!({"title": "x".repeat(500), "template": "4ls"})).await?;
    assert_eq!(long.status, 400, "a 500-character title: {}", long.text());
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_template_list_names_all_six_templates() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let response = http::get(&format!("{}{}", server.http_url(), api::TEMPLATES)).await?;
    assert_eq!(response.status, 200);
    let templates: Vec<serde_json::Value> = response.json()?;
    let ids: BTreeSet<&str> = templates.iter().filter_map(|t| t["id"].as_str()).collect();
    assert_eq!(ids, BTreeSet::from(TEMPLATE_IDS));
    for template in &templates {
        let columns = template["columns"].as_array().expect("every template has columns");
        assert!(!columns.is_empty(), "{template}");
        assert!(template["name"].as_str().is_some_and(|name| !name.is_empty()), "{template}");
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn board_pages_are_404_for_unknown_or_malformed_ids() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let unknown = http::get(&format!("{}/b/{}", server.http_url(), DocumentId::random())).await?;
    assert_eq!(unknown.status, 404);
    assert!(unknown.header("content-type").is_some_and(|t| t.starts_with("text/html")), "the client says so itself");
    let malformed = http::get(&format!("{}/b/not-a-board", server.http_url())).await?;
    assert_eq!(malformed.status, 404);
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn healthz_says_ok() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let response = http::get(&format!("{}/healthz", server.http_url())).await?;
    assert_eq!((response.status, response.text().as_str()), (200, "ok"));
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn board_links_use_the_configured_public_url() -> anyhow::Result<()> {
    let server = TestServer::spawn_with(|config| config.public_url = Some("https://retro.example.com/".into())).await;
    let board = server.create_board("Retro", "went-well").await;
    assert_eq!(board.url, format!("https://retro.example.com/b/{}", board.board_id));
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn joining_a_board_answers_201_with_a_participant_and_a_secret_desk() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Retro", "mad-sad-glad").await;
    let id = board.board_id.to_string();

    let ann = http::post_join(&server.http_url(), &id, "Ann", None).await?;
    assert_eq!(ann.status, 201, "{}", ann.text());
    assert!(ann.header("content-type").is_some_and(|t| t.starts_with("application/json")));
    let ann: serde_json::Value = ann.json()?;
    let ann_id = ann["participant_id"].as_str().expect("participant_id is a string");
    assert!(!ann_id.is_empty());
    let desk: DocumentId = ann["desk_id"].as_str().expect("desk_id is a string").parse()?;
    assert_ne!(desk, board.board_id);
    assert_eq!(ann["facilitator"], false);

    let bob = http::join_board(&server.http_url(), board.board_id, "", None).await?;
    assert_ne!(bob.participant_id, ann_id, "every join is a new participant, even without a name");
    assert_ne!(bob.desk_id, desk);

    let fay = http::join_board(&server.http_url(), board.board_id, "Fay", Some(&board.facilitator_key)).await?;
    assert!(fay.facilitator, "the key makes a facilitator");
    let mut viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    viewer.pump_until("the facilitator", |b| b.facilitator.is_some()).await?;
    assert_eq!(viewer.board().facilitator, Some(fay.participant_id));
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn bad_joins_get_403_404_or_400_with_a_json_error() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Retro", "mad-sad-glad").await;
    let (base, id) = (server.http_url(), board.board_id.to_string());
    let error = |response: &http::HttpResponse| -> anyhow::Result<String> {
        Ok(response.json::<serde_json::Value>()?["error"].as_str().unwrap_or_default().to_owned())
    };

    let wrong = http::post_join(&base, &id, "Mallory", Some("not-the-key")).await?;
    assert_eq!(wrong.status, 403, "a wrong facilitator key: {}", wrong.text());
    assert!(!error(&wrong)?.is_empty());
    let other = server.create_board("Another", "4ls").await;
    let borrowed = http::post_join(&base, &id, "Mallory", Some(&other.facilitator_key)).await?;
    assert_eq!(borrowed.status, 403, "another board's key: {}", borrowed.text());

    let unknown = http::post_join(&base, &DocumentId::random().to_string(), "Ann", None).await?;
    assert_eq!(unknown.status, 404, "an unknown board: {}", unknown.text());
    assert!(!error(&unknown)?.is_empty());
    let malformed = http::post_join(&base, "not-a-board", "Ann", None).await?;
    assert_eq!(malformed.status, 404, "a malformed board id: {}", malformed.text());

    let long = http::post_join(&base, &id, &"x".repeat(61), None).await?;
    assert_eq!(long.status, 400, "a 61-character name: {}", long.text());
    assert!(error(&long)?.contains("60"), "the error says the limit: {}", long.text());
    let nowhere = http::post_join(&base, &DocumentId::random().to_string(), &"x".repeat(61), None).await?;
    assert_eq!(nowhere.status, 404, "a long name for a board that does not exist: {}", nowhere.text());
    let longest = http::post_join(&base, &id, &"x".repeat(60), None).await?;
    assert_eq!(longest.status, 201, "a 60-character name: {}", longest.text());

    let joins = format!("{base}{}", api::participants(id));
    let broken = http::post(&joins, "application/json", b"{\"name\": ").await?;
    assert_eq!(broken.status, 400, "broken JSON: {}", broken.text());
    assert!(!error(&broken)?.is_empty());
    server.shutdown().await;
    Ok(())
}

/// From any device they joined on, a participant who holds the facilitator key takes the role:
/// the key must be the board's, and the desk id must be theirs.
#[tokio::test]
async fn the_facilitator_key_gives_the_role_to_a_participant_who_proves_who_they_are() -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let board = server.create_board("Retro", "mad-sad-glad").await;
    let other = server.create_board("Another", "4ls").await;
    let mut ann = hindsight_tests::Participant::join(&server, board.board_id, "Ann").await?;
    let bob = hindsight_tests::Participant::join(&server, board.board_id, "Bob").await?;
    let url = format!("{}{}", server.http_url(), api::facilitator(board.board_id));
    let claim = |key: &str, desk: DocumentId| json!({"participant_id": ann.id(), "desk_id": desk.to_string(), "facilitator_key": key});

    let wrong_key = http::post_json(&url, &claim(&other.facilitator_key, ann.desk_id())).await?;
    assert_eq!(wrong_key.status, 403, "another board's key: {}", wrong_key.text());
    let wrong_desk = http::post_json(&url, &claim(&board.facilitator_key, bob.desk_id())).await?;
    assert_eq!(wrong_desk.status, 403, "someone else's desk: {}", wrong_desk.text());
    let unknown = format!("{}{}", server.http_url(), api::facilitator(DocumentId::random()));
    assert_eq!(http::post_json(&unknown, &claim(&board.facilitator_key, ann.desk_id())).await?.status, 404);
    let broken = http::post(&url, "application/json", b"{\"participant_id\": ").await?;
    assert_eq!(broken.status, 400, "broken JSON: {}", broken.text());
    assert_ne!(ann.board().facilitator.as_deref(), Some(ann.id()));

    let taken = http::post_json(&url, &claim(&board.facilitator_key, ann.desk_id())).await?;
    assert_eq!(taken.status, 204, "{}", taken.text());
    ann.pump_until("the role", |p| p.board().facilitator.as_deref() == Some(p.id())).await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_board_takes_at_most_max_participants_and_says_so() -> anyhow::Result<()> {
    const MAX: usize = 3;
    let server = TestServer::spawn_with(|config| config.max_participants_per_board = MAX).await;
    let full = server.create_board("Small team", "mad-sad-glad").await;
    let other = server.create_board("Other team", "mad-sad-glad").await;
    // Joins racing each other: exactly MAX get in.
    let (base, board) = (server.http_url(), full.board_id.to_string());
    let names: Vec<String> = (0..MAX + 2).map(|i| format!("P{i}")).collect();
    let joins = names.iter().map(|name| http::post_join(&base, &board, name, None));
    let answers = futures_util::future::join_all(joins).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.as_ref().map_or(0, |r| r.status)).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), MAX, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 2, "{statuses:?}");
    let refused = answers.into_iter().flatten().find(|r| r.status == 409).expect("a refusal");
    let body: serde_json::Value = refused.json()?;
    assert_eq!(body["error"], json!(format!("this board is full: it takes at most {MAX} participants")));
    // Another board is not affected.
    http::join_board(&server.http_url(), other.board_id, "Someone else", None).await?;
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn assets_are_brotli_for_clients_that_accept_it_and_decode_to_the_same_bytes() -> anyhow::Result<()> {
    check_assets(Some("gzip, deflate, br, zstd"), Some("br")).await
}

#[tokio::test]
async fn assets_are_gzip_when_only_gzip_is_accepted() -> anyhow::Result<()> {
    check_assets(Some("gzip, deflate"), Some("gzip")).await
}

#[tokio::test]
async fn assets_are_sent_as_they_are_when_brotli_and_gzip_are_refused_or_not_offered() -> anyhow::Result<()> {
    check_assets(Some("br;q=0, gzip;q=0"), None).await?;
    check_assets(None, None).await
}

/// Fetches every client file the page loads, with `accept` as the request's `Accept-Encoding`
/// (none when `None`), and checks that the code, JavaScript and styles come in the `expected`
/// coding (as they are when `None`), that every answer varies by `Accept-Encoding` and keeps its
/// caching, and that each decodes to exactly the file as it is.
async fn check_assets(accept: Option<&str>, expected: Option<&str>) -> anyhow::Result<()> {
    let server = TestServer::spawn().await;
    let urls = http::asset_urls(&server.http_url()).await?;
    assert!(urls.iter().any(|url| url.ends_with(".wasm")), "the page loads the code: {urls:?}");
    for url in &urls {
        let plain = http::get_with(url, &[("Accept-Encoding", "identity")]).await?;
        assert_eq!((plain.status, plain.header("content-encoding")), (200, None), "{url} as it is");
        let headers: Vec<(&str, &str)> = accept.map(|accept| ("Accept-Encoding", accept)).into_iter().collect();
        let answer = http::get_with(url, &headers).await?;
        assert_eq!(answer.status, 200, "{url}");
        let encoding = answer.header("content-encoding");
        if [".wasm", ".js", ".css"].iter().any(|ext| url.ends_with(ext)) {
            assert_eq!(encoding, expected, "{url} for Accept-Encoding {accept:?}");
        }
        for answer in [&answer, &plain] {
            assert_eq!(answer.header("vary").map(str::to_ascii_lowercase).as_deref(), Some("accept-encoding"), "{url}");
            assert_eq!(answer.header("cache-control"), Some("public, max-age=31536000, immutable"), "{url}");
        }
        assert_eq!(answer.header("content-type"), plain.header("content-type"), "{url}");
        let mut decoded = Vec::new();
        match encoding {
            None => decoded.clone_from(&answer.body),
            Some("br") => {
                let mut decoder = brotli::Decompressor::new(&answer.body[..], 4096);
                decoder.read_to_end(&mut decoded).with_context(|| format!("{url} is not brotli"))?;
            }
            Some("gzip") => {
                let mut decoder = flate2::read::GzDecoder::new(&answer.body[..]);
                decoder.read_to_end(&mut decoded).with_context(|| format!("{url} is not gzip"))?;
            }
            Some(other) => panic!("{url} came in {other}, which was not offered"),
        }
        assert!(
            decoded == plain.body,
            "{url} in {encoding:?} decodes to {} bytes, not the file's {}",
            decoded.len(),
            plain.body.len()
        );
        assert!(answer.body.len() <= plain.body.len(), "{url}: a compressed copy is never larger than the file");
    }
    server.shutdown().await;
    Ok(())
}
