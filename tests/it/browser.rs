//! Browser tests: the real WASM client in headless Chromium, driven through chromedriver.
//!
//! Covers: creating a board from the home page, two browsers sharing a board live (add, edit,
//! delete), edits made while the server is down merging when it returns, and the page for an
//! unknown board. Screenshots land in `tests/artifacts/`.

use fantoccini::Locator;
use hindsight_tests::TestServer;
use hindsight_tests::browser::{Browser, Page};

/// Two participants on one board see each other's notes appear, change and disappear.
#[tokio::test]
async fn two_browsers_share_a_board_live() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Sprint 42 retro", "mad-sad-glad").await;
    let browser = Browser::launch().await;
    let alice = browser.open(&board.url).await;
    let bob = browser.open(&board.url).await;
    alice.wait_connected().await;
    bob.wait_connected().await;

    alice.add_note("glad", "Deploys got faster").await;
    bob.wait_for_note("glad", "Deploys got faster").await;

    bob.add_note("mad", "Flaky CI again").await;
    alice.wait_for_note("mad", "Flaky CI again").await;

    alice.edit_note("glad", "Deploys got faster", "Deploys got much faster").await;
    bob.wait_for_note("glad", "Deploys got much faster").await;

    alice.delete_note("mad", "Flaky CI again").await;
    bob.wait_for_count("mad", 0).await;
    assert_eq!(bob.notes("mad").await, Vec::<String>::new());
    assert_eq!(bob.notes("glad").await, ["Deploys got much faster"]);

    alice.add_note("sad", "We skipped the demo").await;
    bob.wait_for_note("sad", "We skipped the demo").await;
    alice.screenshot("board-two-browsers").await;

    alice.close().await;
    bob.close().await;
    browser.quit().await;
    server.shutdown().await;
}

/// A facilitator creates a board from the home page and lands on it, holding the facilitator key.
#[tokio::test]
async fn the_home_page_creates_a_board() {
    let server = TestServer::spawn().await;
    let browser = Browser::launch().await;
    let page = browser.open(&format!("{}/", server.http_url())).await;
    page.wait_for(Locator::Css("#title")).await.send_keys("Incident 7 postmortem").await.expect("type the title");
    page.click(Locator::Css(".template[data-template='incident-postmortem']")).await;
    page.screenshot("home").await;
    page.click(Locator::Css("#create")).await;

    page.wait_for(Locator::XPath("//h1[@id='board-title' and text()='Incident 7 postmortem']")).await;
    page.wait_connected().await;
    let columns = page.client().find_all(Locator::Css(".column")).await.expect("columns");
    assert_eq!(columns.len(), 6, "the postmortem template has six columns");
    page.wait_for(Locator::Css(".badge")).await;
    let url = page.client().current_url().await.expect("url");
    assert!(url.path().starts_with("/b/"), "landed on the board, not {url}");
    assert_eq!(url.fragment(), None, "the facilitator key left the address bar");

    page.close().await;
    browser.quit().await;
    server.shutdown().await;
}

/// A participant keeps writing while the server is down; the note reaches the others once it is
/// back, and both browsers reconnect by themselves.
#[tokio::test]
async fn edits_made_while_disconnected_merge_on_reconnect() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Offline retro", "start-stop-continue").await;
    let browser = Browser::launch().await;
    let alice = browser.open(&board.url).await;
    let bob = browser.open(&board.url).await;
    alice.wait_connected().await;
    bob.wait_connected().await;
    alice.add_note("start", "Written while online").await;
    bob.wait_for_note("start", "Written while online").await;

    let stopped = server.stop().await;
    alice.wait_state("reconnecting").await;
    bob.wait_state("reconnecting").await;
    alice.add_note("stop", "Written while the server was down").await;
    alice.wait_for_note("stop", "Written while the server was down").await;
    alice.screenshot("board-reconnecting").await;

    let server = stopped.start_again().await;
    alice.wait_connected().await;
    bob.wait_connected().await;
    bob.wait_for_note("stop", "Written while the server was down").await;
    assert_eq!(bob.notes("start").await, ["Written while online"]);

    alice.close().await;
    bob.close().await;
    browser.quit().await;
    server.shutdown().await;
}

/// A link to a board that does not exist says so instead of spinning.
#[tokio::test]
async fn an_unknown_board_says_it_does_not_exist() {
    let server = TestServer::spawn().await;
    let browser = Browser::launch().await;
    let unknown = hindsight_shared::ids::DocumentId::random();
    let page: Page = browser.open(&format!("{}/b/{unknown}", server.http_url())).await;
    page.wait_for(Locator::Css("#not-found")).await;
    page.close().await;
    browser.quit().await;
    server.shutdown().await;
}
