//! Browser tests: the real WASM client in headless Chromium, driven through chromedriver.
//!
//! Covers: a whole retro with three participants from Write to Done, run from the facilitator's
//! UI (a screenshot of each phase lands in `tests/artifacts/`); notes that stay private until
//! revealed and then follow their author's edits live; the home page; edits made while the server
//! is down merging when it returns; a connection that dies in silence; the page for an unknown
//! board.

use fantoccini::Locator;
use hindsight_tests::browser::{Browser, Page};
use hindsight_tests::{Endpoint, FaultyProxy, TestServer};

/// A facilitator runs a retro with two participants, Write to Done, from the UI alone.
#[tokio::test]
async fn a_whole_retro_from_write_to_done() {
    let server = TestServer::spawn().await;
    let browser = Browser::launch().await;

    // The facilitator creates the board from the home page and shares its link.
    let fay = browser.open(&format!("{}/", server.http_url())).await;
    fay.wait_for(Locator::Css("#title")).await.send_keys("Sprint 42 retro").await.expect("title");
    fay.click(Locator::Css(".template[data-template='start-stop-continue']")).await;
    fay.click(Locator::Css("#create")).await;
    fay.join("Fay").await;
    fay.wait_for(Locator::Css("#facilitator-badge")).await;
    let link = fay.client().current_url().await.expect("url").to_string();
    assert!(!link.contains('#'), "the shared link carries no facilitator key: {link}");
    let ann = browser.participant(&link, "Ann").await;
    let bob = browser.participant(&link, "Bob").await;
    assert!(ann.client().find(Locator::Css("#next-phase")).await.is_err(), "only the facilitator moves phases");

    // Write: in private; others see only counts.
    ann.add_note("stop", "Friday deploys").await;
    ann.add_note("start", "Write tests first").await;
    bob.add_note("stop", "Late standups").await;
    bob.add_note("continue", "Demo every sprint").await;
    fay.wait_person_status("Ann", "2 notes").await;
    fay.wait_person_status("Bob", "2 notes").await;
    // Two writers could tell each other's notes apart: the facilitator is told before revealing.
    let warning = fay.wait_for(Locator::Css("#weak-anonymity")).await;
    assert!(warning.text().await.expect("text").contains("Only two people wrote notes"));
    assert!(ann.client().find(Locator::Css("#weak-anonymity")).await.is_err(), "only the facilitator is told");
    fay.add_note("start", "Pair on reviews").await;
    fay.wait_js("document.getElementById('weak-anonymity') === null").await;
    assert!(!bob.html().await.contains("Friday deploys"), "Bob's page shows Ann's unrevealed note");
    ann.screenshot("phase-1-write").await;

    // Reveal: one column, then all.
    fay.next_phase("reveal").await;
    fay.click(Locator::Css(".reveal-column[data-column='stop']")).await;
    bob.wait_for_note("stop", "Friday deploys").await;
    assert!(!bob.html().await.contains("Write tests first"), "an unrevealed column stays private");
    fay.click(Locator::Css("#reveal-all")).await;
    bob.wait_for_note("start", "Write tests first").await;
    ann.wait_for_note("continue", "Demo every sprint").await;
    fay.screenshot("phase-2-reveal").await;

    // Group: the two stop notes share a root cause.
    fay.next_phase("group").await;
    ann.wait_phase("group").await;
    ann.group("Friday deploys", "Late standups").await;
    let title = ann
        .wait_for(Locator::XPath(&format!(
            "{}//input[contains(@class,'cluster-title')]",
            Page::item_xpath("Friday deploys")
        )))
        .await;
    // Typing then Tab: the title is saved when the field loses focus.
    let tab = char::from(fantoccini::key::Key::Tab);
    title.send_keys(&format!("Our week starts badly{tab}")).await.expect("name the cluster");
    bob.wait_for(Locator::XPath("//header[@class='cluster-header' and @data-title='Our week starts badly']")).await;
    bob.screenshot("phase-3-group").await;

    // Vote: dots stay private until voting closes.
    fay.next_phase("vote").await;
    ann.wait_phase("vote").await;
    bob.wait_phase("vote").await;
    ann.vote("Friday deploys", 1).await;
    ann.vote("Friday deploys", 2).await;
    ann.vote("Write tests first", 1).await;
    bob.vote("Late standups", 1).await;
    bob.vote("Demo every sprint", 1).await;
    fay.vote("Friday deploys", 1).await;
    ann.wait_for(Locator::Css("#dots-left[data-left='2']")).await;
    fay.wait_for(Locator::XPath("//p[@id='not-voted' and normalize-space(.)='Everyone has voted.']")).await;
    assert!(bob.client().find(Locator::Css(".votes")).await.is_err(), "no totals while voting");
    ann.screenshot("phase-4-vote").await;

    // Discuss: totals appear, most voted first; the facilitator focuses the top item.
    fay.next_phase("discuss").await;
    bob.wait_phase("discuss").await;
    let top = bob.wait_for(Locator::Css("#agenda li:first-child .votes")).await;
    assert_eq!(top.attr("data-votes").await.expect("votes"), Some("4".to_owned()), "2 + 1 + 1 dots on the cluster");
    fay.click_on_item("Friday deploys", "focus-item").await;
    ann.wait_for(Locator::XPath("//h2[@id='focused-title' and normalize-space(.)='Our week starts badly']")).await;
    ann.wait_for(Locator::Css("#action-text")).await.send_keys("Move deploys to Tuesday").await.expect("text");
    ann.wait_for(Locator::Css("#action-owner")).await.send_keys("Ann").await.expect("owner");
    ann.click(Locator::Css("#add-action")).await;
    bob.wait_for(Locator::XPath(
        "//li[contains(@class,'action-item')][.//span[normalize-space(.)='Move deploys to Tuesday']]",
    ))
    .await;
    fay.screenshot("phase-5-discuss").await;

    // Actions: another item, with an owner and a due date.
    fay.next_phase("actions").await;
    bob.wait_phase("actions").await;
    bob.wait_for(Locator::Css("#action-text")).await.send_keys("Start standups at 9:30 sharp").await.expect("text");
    bob.wait_for(Locator::Css("#action-owner")).await.send_keys("Bob").await.expect("owner");
    bob.click(Locator::Css("#add-action")).await;
    fay.wait_for(Locator::XPath(
        "//li[contains(@class,'action-item')][.//span[normalize-space(.)='Start standups at 9:30 sharp']]",
    ))
    .await;
    fay.screenshot("phase-6-actions").await;

    // Done: read-only, with a summary everyone sees.
    fay.next_phase("done").await;
    for page in [&ann, &bob] {
        page.wait_phase("done").await;
        page.wait_for(Locator::XPath(
            "//*[@id='summary']//span[@class='ranked-title' and normalize-space(.)='Our week starts badly']",
        ))
        .await;
        assert!(page.client().find(Locator::Css("#action-text")).await.is_err(), "a done board is read-only");
    }
    let summary = ann.html().await;
    assert!(summary.contains("Move deploys to Tuesday") && summary.contains("Start standups at 9:30 sharp"));

    // ROTI: each rates in private; the facilitator shows the results, a histogram of three.
    for (page, rating) in [(&ann, 4), (&bob, 5), (&fay, 4)] {
        page.click(Locator::Css(&format!(".roti-choice[data-rating='{rating}']"))).await;
        page.wait_for(Locator::Css(&format!(".roti-choice[data-rating='{rating}'][aria-checked='true']"))).await;
        page.wait_for(Locator::Css("#connection[data-pending='0']")).await;
    }
    assert!(bob.client().find(Locator::Css("#show-roti")).await.is_err(), "only the facilitator shows the results");
    fay.click(Locator::Css("#show-roti")).await;
    for page in [&ann, &bob, &fay] {
        let mean = page.wait_for(Locator::Css("#roti-mean")).await;
        assert_eq!(mean.text().await.expect("text"), "Mean 4.3 out of 5, from 3 ratings");
        page.wait_for(Locator::Css("#roti-chart .roti-bar[data-rating='4'][data-count='2']")).await;
        page.wait_for(Locator::Css("#roti-chart .roti-bar[data-rating='5'][data-count='1']")).await;
    }
    ann.screenshot("phase-7-done").await;

    // The home page lists the boards this browser opened, with their phase: the link is not lost.
    ann.client().goto(&format!("{}/", server.http_url())).await.expect("home");
    let listed = ann.wait_for(Locator::Css(".your-board .your-board-title")).await;
    assert_eq!(listed.text().await.expect("title"), "Sprint 42 retro");
    let phase = ann.wait_for(Locator::Css(".your-board .your-board-phase")).await;
    assert_eq!(phase.text().await.expect("phase"), "Done");
    listed.click().await.expect("open the board again");
    ann.wait_phase("done").await;
    ann.client().goto(&format!("{}/", server.http_url())).await.expect("home");
    ann.click(Locator::Css(".your-board-forget")).await;
    ann.wait_js("document.querySelector('.your-boards') === null").await;

    for page in [fay, ann, bob] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

/// A note stays on its author's desk until revealed; after that the author's edits and deletes
/// reach everyone live.
#[tokio::test]
async fn revealed_notes_follow_their_authors_edits_live() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Sprint 43", "mad-sad-glad").await;
    let browser = Browser::launch().await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let alice = browser.participant(&board.url, "Alice").await;

    alice.add_note("glad", "Deploys got faster").await;
    alice.add_note("mad", "Flaky CI again").await;
    fay.wait_person_status("Alice", "2 notes").await;
    assert!(!fay.html().await.contains("Deploys got faster"));

    fay.next_phase("reveal").await;
    fay.click(Locator::Css("#reveal-all")).await;
    fay.wait_for_note("glad", "Deploys got faster").await;
    alice.edit_note("glad", "Deploys got faster", "Deploys got much faster").await;
    fay.wait_for_note("glad", "Deploys got much faster").await;
    alice.delete_note("mad", "Flaky CI again").await;
    fay.wait_for_count("mad", 0).await;
    assert_eq!(fay.notes("glad").await, ["Deploys got much faster"]);
    assert!(fay.client().find(Locator::Css(".note .edit-note")).await.is_err(), "only authors edit their notes");
    alice.screenshot("board-two-browsers").await;

    for page in [fay, alice] {
        page.close().await;
    }
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
    page.join("Fay").await;

    page.wait_for(Locator::XPath("//h1[@id='board-title' and text()='Incident 7 postmortem']")).await;
    let columns = page.client().find_all(Locator::Css(".column")).await.expect("columns");
    assert_eq!(
        columns.len(),
        4,
        "the postmortem template has four columns: its timeline, causes and actions have their own places"
    );
    page.wait_for(Locator::Css("#facilitator-badge")).await;
    let url = page.client().current_url().await.expect("url");
    assert!(url.path().starts_with("/b/"), "landed on the board, not {url}");
    assert_eq!(url.fragment(), None, "the facilitator key left the address bar");

    page.close().await;
    browser.quit().await;
    server.shutdown().await;
}

/// A participant keeps writing while the server is down; the note is there once it is back, and
/// both browsers reconnect by themselves.
#[tokio::test]
async fn edits_made_while_disconnected_merge_on_reconnect() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Offline retro", "start-stop-continue").await;
    let browser = Browser::launch().await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let alice = browser.participant(&board.url, "Alice").await;
    alice.add_note("start", "Written while online").await;
    fay.wait_person_status("Alice", "1 note").await;

    let stopped = server.stop().await;
    alice.wait_state("reconnecting").await;
    fay.wait_state("reconnecting").await;
    alice.add_note("stop", "Written while the server was down").await;
    alice.wait_for_note("stop", "Written while the server was down").await;
    alice.screenshot("board-reconnecting").await;

    let server = stopped.start_again().await;
    alice.wait_connected().await;
    fay.wait_connected().await;
    fay.wait_person_status("Alice", "2 notes").await;
    fay.next_phase("reveal").await;
    fay.click(Locator::Css("#reveal-all")).await;
    fay.wait_for_note("stop", "Written while the server was down").await;
    assert_eq!(fay.notes("start").await, ["Written while online"]);

    for page in [fay, alice] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

/// A participant loses the server, reloads the tab, and keeps working: the board comes back from
/// the browser's own copy, the indicator counts the changes waiting, and they all arrive once
/// the server is back.
#[tokio::test]
async fn a_tab_reloaded_while_offline_keeps_its_notes_and_syncs_them_later() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Outage retro", "went-well").await;
    let browser = Browser::launch().await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let alice = browser.participant(&board.url, "Alice").await;
    alice.add_note("went-well", "Before the outage").await;
    fay.wait_person_status("Alice", "1 note").await;
    // The service worker controls the page and the offline copy holds the note.
    alice.wait_js("navigator.serviceWorker.controller").await;
    alice.wait_for(Locator::Css("#connection[data-pending='0'][data-stored='true']")).await;

    let stopped = server.stop().await;
    alice.wait_state("reconnecting").await;
    alice.reload().await;
    alice.wait_for_note("went-well", "Before the outage").await;
    alice.wait_for(Locator::Css("#connection:not([data-state='connected'])")).await;
    alice.add_note("to-improve", "Written offline after a reload").await;
    alice.wait_for(Locator::Css("#connection[data-pending='1']")).await;
    let label = alice.wait_for(Locator::Css("#connection")).await.text().await.expect("label");
    assert!(label.contains("1 change waiting"), "the indicator says what waits: {label}");
    alice.screenshot("offline-reloaded").await;

    let server = stopped.start_again().await;
    alice.wait_for(Locator::Css("#connection[data-state='connected'][data-pending='0']")).await;
    fay.wait_person_status("Alice", "2 notes").await;
    fay.next_phase("reveal").await;
    fay.click(Locator::Css("#reveal-all")).await;
    fay.wait_for_note("to-improve", "Written offline after a reload").await;
    fay.wait_for_note("went-well", "Before the outage").await;

    for page in [fay, alice] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

/// A connection whose network dies without closing it is noticed: within seconds the badge says
/// offline with the change that waits, nobody else is shown online, and the note written into
/// the dead connection arrives once the network is back.
#[tokio::test]
async fn a_connection_that_dies_in_silence_is_noticed() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Flaky wifi retro", "start-stop-continue").await;
    let proxy = FaultyProxy::start(&server).await.expect("a proxy");
    let browser = Browser::launch().await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&format!("{}/b/{}", proxy.http_url(), board.board_id), "Ann").await;
    let fay_on_anns_page = "//li[contains(@class,'person')][.//span[starts-with(normalize-space(.),'Fay')]]";
    ann.wait_for(Locator::XPath(&format!("{fay_on_anns_page}[not(contains(@class,'offline'))]"))).await;

    proxy.freeze();
    ann.add_note("start", "Written into a dead connection").await;
    ann.wait_state("offline").await;
    let label = ann.wait_for(Locator::Css("#connection")).await.text().await.expect("label");
    assert!(label.contains("1 change waiting"), "the badge says what waits: {label}");
    ann.wait_for(Locator::Css("#presence-unknown")).await;
    ann.wait_for(Locator::XPath(&format!("{fay_on_anns_page}[contains(@class,'offline')]"))).await;

    proxy.thaw();
    ann.wait_for(Locator::Css("#connection[data-state='connected'][data-pending='0']")).await;
    fay.wait_person_status("Ann", "1 note").await;
    ann.wait_for(Locator::XPath(&format!("{fay_on_anns_page}[not(contains(@class,'offline'))]"))).await;

    for page in [fay, ann] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

/// A change made offline that the board can no longer take (a cluster renamed after grouping
/// ended) is taken back with a message that says what it was and why, not just the rule.
#[tokio::test]
async fn a_refused_offline_change_says_what_it_was() {
    use hindsight_shared::schema::Phase;
    let server = TestServer::spawn().await;
    let board = server.create_board("Train retro", "start-stop-continue").await;
    let mut fay = hindsight_tests::Participant::join_as_facilitator(&server, &board, "Fay").await.expect("Fay");
    let a = fay.write("stop", "Flaky CI").await.expect("a note");
    let b = fay.write("stop", "Slow CI").await.expect("a note");
    fay.set_phase(Phase::Reveal).await.expect("reveal");
    fay.reveal_all().await.expect("revealed");
    fay.set_phase(Phase::Group).await.expect("group");
    let (a, b) = (fay.note_id(&a), fay.note_id(&b));
    fay.pump_until("the notes", |p| p.board().notes.contains_key(&a) && p.board().notes.contains_key(&b))
        .await
        .expect("notes");
    fay.group(&a, &b).await.expect("grouped");

    let proxy = FaultyProxy::start(&server).await.expect("a proxy");
    let browser = Browser::launch().await;
    let ann = browser.participant(&format!("{}/b/{}", proxy.http_url(), board.board_id), "Ann").await;
    let field = format!("{}//input[contains(@class,'cluster-title')]", Page::item_xpath("Flaky CI"));
    ann.wait_for(Locator::XPath(&field)).await;

    // Ann's train enters a tunnel; she names the cluster meanwhile; grouping ends.
    proxy.freeze();
    assert!(proxy.cut_all() > 0, "Ann's connection was live");
    ann.wait_for(Locator::Css("#connection:not([data-state='connected'])")).await;
    let tab = char::from(fantoccini::key::Key::Tab);
    ann.wait_for(Locator::XPath(&field)).await.send_keys(&format!("Our CI{tab}")).await.expect("a name");
    ann.wait_for(Locator::Css("#connection[data-pending='1']")).await;
    fay.set_phase(Phase::Vote).await.expect("vote");
    proxy.thaw();

    // The message shows for a few seconds: read it in the page as it appears.
    ann.wait_js(
        "(document.querySelector('#refusal')?.textContent || '').includes('your name “Our CI” for a group, made while offline, arrived too late') \
         && document.querySelector('#refusal').textContent.includes('grouping is not possible in the vote phase')",
    )
    .await;
    ann.wait_for(Locator::Css("#connection[data-state='connected'][data-pending='0']")).await;

    ann.close().await;
    browser.quit().await;
    server.shutdown().await;
}

/// A link to a board that does not exist says so instead of spinning.
#[tokio::test]
async fn an_unknown_board_says_it_does_not_exist() {
    let server = TestServer::spawn().await;
    let browser = Browser::launch().await;
    let unknown = hindsight_shared::ids::DocumentId::random();
    let page = browser.open(&format!("{}/b/{unknown}", server.http_url())).await;
    page.wait_for(Locator::Css("#join-name")).await.send_keys("Nobody").await.expect("type a name");
    page.click(Locator::Css("#join")).await;
    page.wait_for(Locator::Css("#not-found")).await;
    page.close().await;
    browser.quit().await;
    server.shutdown().await;
}

/// Only the server's notices are believed: a peer's ephemeral message shaped like a presence
/// roster (a fake person) or a refusal (of the board's first change, which would make the browser
/// throw its copy away) changes nothing on the page.
#[tokio::test]
async fn a_forged_notice_from_a_peer_changes_nothing_in_the_browser() {
    use hindsight_shared::presence::{Notice, PresenceEntry};
    let server = TestServer::spawn().await;
    let board = server.create_board("Trusted retro", "mad-sad-glad").await;
    let browser = Browser::launch().await;
    let url = format!("{}/b/{}", server.http_url(), board.board_id);
    let fay = browser.facilitator(&url, &board.facilitator_key, "Fay").await;
    fay.add_note("mad", "Slow builds").await;
    fay.wait_person_status("Fay", "1 note").await;

    let mut forger = hindsight_tests::SyncPeer::open(&server.ws_url(), board.board_id).await.expect("a viewer");
    let first = forger.doc().get_changes(&[]).first().map(|c| c.hash().0).expect("the board's first change");
    let fake =
        PresenceEntry { id: "mallory".into(), name: "Mallory the Admin".into(), online: true, ..Default::default() };
    let roster = Notice::Presence { now_ms: 0, you: None, participants: vec![fake], full: true };
    forger.send_ephemeral("forged", 1, &roster.encode()).await.expect("sent");
    let refusal =
        Notice::Refused { reason: "Your session expired: log in at evil.example".into(), changes: vec![first] };
    forger.send_ephemeral("forged", 2, &refusal.encode()).await.expect("sent");

    // What the server says next arrives after the forgeries: Ann comes.
    let ann = browser.participant(&url, "Ann").await;
    fay.wait_person_status("Ann", "thinking…").await;
    let html = fay.html().await;
    assert!(!html.contains("Mallory the Admin"), "a forged roster reached the page");
    assert!(!html.contains("evil.example"), "a forged refusal reached the page");
    assert!(html.contains("Trusted retro") && html.contains("Slow builds"), "the board is whole");
    ann.close().await;
    fay.close().await;
    browser.quit().await;
    server.shutdown().await;
}
