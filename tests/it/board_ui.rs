//! Browser tests of the board as a team uses it (issue 12): cards arranged and sorted for
//! everyone, a note found on a big board, a postmortem that fits a laptop and a phone, a
//! facilitator who comes back from another device and shares the role, timers of any length,
//! and the small things a first retro trips over.

use fantoccini::Locator;
use fantoccini::key::Key;
use hindsight_shared::schema::{Board, Phase};
use hindsight_tests::browser::{Browser, Page};
use hindsight_tests::{Participant, TestServer};

/// Alt+↑ or Alt+↓, as WebDriver types it (the modifier stays down until the null key).
fn alt(arrow: Key) -> String {
    [Key::Alt, arrow, Key::Null].into_iter().map(char::from).collect()
}

/// The element of the card (note or item) that reads `text`, in `column`.
async fn card(page: &Page, column: &str, text: &str) -> fantoccini::elements::Element {
    let xpath = format!(
        "//section[@data-column='{column}']//*[self::article][.//p[@class='note-text' and normalize-space(.)='{text}']][last()]"
    );
    page.wait_for(Locator::XPath(&xpath)).await
}

/// Waits until both pages show `column`'s notes in `order`.
async fn wait_order(pages: &[&Page], column: &str, order: &[&str]) {
    let expected = serde_json::json!(order).to_string();
    for page in pages {
        let script = format!(
            "JSON.stringify([...document.querySelectorAll(`.column[data-column='{column}'] .note-text`)].map(e => e.textContent.trim())) === '{expected}'"
        );
        page.wait_js(&script).await;
    }
}

#[tokio::test]
async fn cards_are_arranged_and_sorted_for_everyone_and_a_filter_finds_a_note() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Arranged retro", "start-stop-continue").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await.expect("Fay");
    let mut cy = Participant::join(&server, board.board_id, "Cy").await.expect("Cy");
    for text in ["Cherry", "Apple", "Banana"] {
        cy.write("start", text).await.expect("a note");
    }
    fay.set_phase(Phase::Reveal).await.expect("reveal phase");
    fay.reveal_all().await.expect("revealed");
    let browser = Browser::launch().await;
    let ann = browser.participant(&board.url, "Ann").await;
    let bob = browser.participant(&board.url, "Bob").await;
    ann.wait_for_count("start", 3).await;
    let order = ann.notes("start").await;

    // Alt+↑ moves a card up its column, for everyone.
    card(&ann, "start", &order[2]).await.send_keys(&alt(Key::Up)).await.expect("move up");
    let moved = [order[0].as_str(), order[2].as_str(), order[1].as_str()];
    wait_order(&[&ann, &bob], "start", &moved).await;
    // A card dragged onto the bottom edge of another goes after it.
    let (first, last) = (card(&bob, "start", moved[0]).await, card(&bob, "start", moved[2]).await);
    bob.drag(&first, &last, true).await;
    let dragged = [moved[1], moved[2], moved[0]];
    wait_order(&[&ann, &bob], "start", &dragged).await;

    // Sorting sorts every column for everyone.
    ann.click(Locator::Css("#sort-text")).await;
    wait_order(&[&ann, &bob], "start", &["Apple", "Banana", "Cherry"]).await;

    // A filter is one's own: it hides what does not match, for this person only.
    ann.wait_for(Locator::Css("#filter")).await.send_keys("an").await.expect("type a filter");
    ann.wait_js("document.querySelector('#filter-count')?.textContent.trim() === '1 of 3 notes'").await;
    assert_eq!(ann.shown_notes("start").await, ["Banana"]);
    assert_eq!(bob.shown_notes("start").await, ["Apple", "Banana", "Cherry"]);

    // Grouping keeps cards where they were: Cherry dropped on Apple makes a cluster in Apple's
    // place, and Banana stays second.
    fay.set_phase(Phase::Group).await.expect("group phase");
    bob.wait_phase("group").await;
    bob.group("Cherry", "Apple").await;
    let lane = "//section[@data-column='start']//article[contains(@class,'item')]";
    for page in [&ann, &bob] {
        page.wait_for(Locator::XPath(&format!(
            "({lane})[1][.//p[normalize-space(.)='Apple']][.//p[normalize-space(.)='Cherry']]"
        )))
        .await;
        page.wait_for(Locator::XPath(&format!("({lane})[2][.//p[normalize-space(.)='Banana']]"))).await;
    }

    for page in [ann, bob] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_postmortem_of_sixty_notes_fits_a_laptop_and_a_phone() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Incident 7 postmortem", "incident-postmortem").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await.expect("Fay");
    let template = hindsight_shared::templates::find("incident-postmortem").expect("template");
    let mut writers = Vec::new();
    for name in ["Ann", "Bob", "Cy"] {
        writers.push(Participant::join(&server, board.board_id, name).await.expect("a writer"));
    }
    for i in 0..61 {
        let column = template.columns[i % template.columns.len()].id;
        let text = format!("Note {i}: {}", ["the pager was silent", "a dashboard lied", "rollback took 20 min"][i % 3]);
        writers[i % 3].write(column, &text).await.expect("a note");
    }
    fay.set_phase(Phase::Reveal).await.expect("reveal phase");
    fay.reveal_all().await.expect("revealed");
    fay.set_phase(Phase::Group).await.expect("group phase");

    let browser = Browser::launch().await;
    let page = browser.participant(&board.url, "Dee").await;
    page.wait_phase("group").await;
    page.wait_js("document.querySelectorAll('article.item').length === 61").await;
    // At 1280 px every one of the four columns is on screen, wide enough to read.
    let lanes = page
        .eval("[...document.querySelectorAll('.lanes-row > .column')].map(c => { const r = c.getBoundingClientRect(); return [Math.round(r.left), Math.round(r.right), Math.round(r.width)]; })")
        .await;
    let lanes: Vec<[i64; 3]> = serde_json::from_value(lanes).expect("lane boxes");
    let width = page.eval("window.innerWidth").await.as_i64().expect("a width");
    assert_eq!(lanes.len(), 4);
    for [left, right, lane_width] in lanes {
        assert!(
            left >= 0 && right <= width && lane_width >= 136,
            "a lane off screen or too narrow: {left}..{right} of {width}"
        );
    }
    let height = page.eval("document.scrollingElement.scrollHeight").await.as_i64().expect("a height");
    assert!(height < 2_200, "the group view of 61 notes is {height} px tall");
    println!("a postmortem of 61 notes while grouping, at 1280 px: four lanes on screen, {height} px tall");
    page.screenshot("postmortem-1280").await;

    // On a phone, one column at a time, chosen from the buttons above; targets are thumb-sized.
    page.resize(390, 844).await;
    let shown = "[...document.querySelectorAll('.lanes-row > .column')].filter(c => c.getClientRects().length > 0).map(c => c.dataset.column)";
    page.wait_js(&format!("JSON.stringify({shown}) === '[\"went-well\"]'")).await;
    page.click(Locator::Css(".lane-pick[data-column='surprised']")).await;
    page.wait_js(&format!("JSON.stringify({shown}) === '[\"surprised\"]'")).await;
    let smallest = page
        .eval("Math.min(...[...document.querySelectorAll('.column.current button, .lane-pick')].filter(b => b.getClientRects().length > 0).map(b => b.getBoundingClientRect().height))")
        .await;
    assert!(smallest.as_f64().expect("a height") >= 44.0, "a touch target is {smallest} px tall");
    let overflow = page.eval("document.scrollingElement.scrollWidth - window.innerWidth").await;
    assert!(overflow.as_i64().expect("a width") <= 0, "the phone page scrolls sideways by {overflow} px");
    page.screenshot("postmortem-phone").await;

    page.close().await;
    browser.quit().await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_facilitator_comes_back_from_another_device_and_shares_the_role() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Handover retro", "mad-sad-glad").await;
    let browser = Browser::launch().await;
    let laptop = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&board.url, "Ann").await;
    let bob = browser.participant(&board.url, "Bob").await;

    // The facilitator link, with the key, is there to keep.
    laptop.click(Locator::Css("#facilitator-link")).await;
    let link = laptop.wait_for(Locator::Css("#facilitator-link-text")).await.prop("value").await.expect("the link");
    let link = link.expect("a link");
    assert!(link.ends_with(&format!("#key={}", board.facilitator_key)), "{link}");

    // Another device opens it and runs the retro; the laptop, holding the key, can take it back.
    let phone = browser.open(&link).await;
    phone.join("Fay on the phone").await;
    phone.wait_for(Locator::Css("#facilitator-badge")).await;
    laptop.wait_for(Locator::Css("#take-role")).await;
    assert!(laptop.client().find(Locator::Css("#facilitator-badge")).await.is_err());
    laptop.click(Locator::Css("#take-role")).await;
    laptop.wait_for(Locator::Css("#facilitator-badge")).await;
    phone.wait_js("!document.querySelector('#facilitator-badge')").await;
    assert!(ann.client().find(Locator::Css("#take-role")).await.is_err(), "only a key holder takes the role");

    // A co-facilitator runs the retro too.
    laptop
        .click(Locator::XPath("//li[contains(@class,'person')][.//span[starts-with(normalize-space(.),'Ann')]]//button[contains(@class,'co-facilitate')]"))
        .await;
    ann.wait_for(Locator::Css("#facilitator-badge")).await;
    ann.next_phase("reveal").await;
    laptop.wait_phase("reveal").await;
    laptop.wait_for(Locator::XPath("//span[@class='person-role' and contains(., 'co-facilitator')]")).await;

    // Someone who joined without the key, opening the facilitator link later, takes the role.
    bob.client().goto(&link).await.expect("open the link");
    bob.wait_for(Locator::Css("#facilitator-badge")).await;
    laptop.wait_for(Locator::Css("#take-role")).await;

    for page in [laptop, phone, ann, bob] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_timer_of_any_length_and_none_left_on_a_finished_board() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Timed retro", "went-well").await;
    let browser = Browser::launch().await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&board.url, "Ann").await;
    let minutes = fay.wait_for(Locator::Css("#timer-minutes")).await;
    minutes.clear().await.expect("clear");
    minutes.send_keys("7").await.expect("seven minutes");
    fay.click(Locator::Css("#start-custom-timer")).await;
    ann.wait_js("/^(7:00|6:[0-5][0-9])$/.test(document.querySelector('#timer')?.textContent.trim())").await;

    for phase in ["reveal", "group", "vote", "discuss", "actions", "done"] {
        fay.next_phase(phase).await;
    }
    ann.wait_phase("done").await;
    ann.wait_js("!document.querySelector('#timer')").await;
    let viewer = hindsight_tests::SyncPeer::open(&server.ws_url(), board.board_id).await.expect("a viewer");
    let finished = Board::read(viewer.doc()).expect("a board");
    assert_eq!(finished.phase, Phase::Done);
    assert_eq!(finished.timer.ends_at, None, "the timer stopped with the retro");

    for page in [fay, ann] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_small_things_a_first_retro_trips_over() {
    let server = TestServer::spawn().await;
    let board = server.create_board("First retro", "start-stop-continue").await;
    let browser = Browser::launch().await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let al = browser.participant(&board.url, "Al").await;

    // A disabled "Back" looks disabled; a short name shows whole beside the facilitator's tools.
    let back = fay.eval("(() => { const b = document.querySelector('#prev-phase'); return [b.getAttribute('aria-disabled'), getComputedStyle(b).borderStyle]; })()").await;
    assert_eq!(back, serde_json::json!(["true", "dashed"]));
    fay.wait_for(Locator::XPath(
        "//li[contains(@class,'person')]//span[@class='person-name' and normalize-space(.)='Al']",
    ))
    .await;
    let cut = fay.eval("[...document.querySelectorAll('.person-name')].some(n => n.scrollWidth > n.clientWidth)").await;
    assert_eq!(cut, serde_json::json!(false), "a name is cut short");

    // A delete can be undone.
    al.add_note("start", "Undo me").await;
    al.delete_note("start", "Undo me").await;
    al.wait_js("!document.body.innerText.includes('Undo me')").await;
    al.click(Locator::Css("#undo")).await;
    al.wait_for_note("start", "Undo me").await;

    // Web links in a note are links; nothing else is.
    al.add_note("stop", "See https://example.com/runbook.").await;
    al.add_note("stop", "javascript:alert(1)").await;
    al.add_note("continue", "Demos").await;
    al.add_note("continue", "Pairing").await;
    fay.wait_person_status("Al", "5 notes").await;
    fay.next_phase("reveal").await;
    fay.click(Locator::Css("#reveal-all")).await;
    let link = fay.wait_for(Locator::Css(".note-text a[href='https://example.com/runbook']")).await;
    assert_eq!(link.attr("rel").await.expect("rel").as_deref(), Some("noopener noreferrer nofollow"));
    assert_eq!(fay.eval("document.querySelectorAll('.note-text a').length").await, serde_json::json!(1));

    // An untitled cluster has one name everywhere: its first note's; merging keeps both names.
    fay.next_phase("group").await;
    al.wait_phase("group").await;
    al.group("Undo me", "Demos").await;
    al.group("Pairing", "See https://example.com/runbook.").await;
    let title = |note: &str| format!("{}//input[contains(@class,'cluster-title')]", Page::item_xpath(note));
    al.wait_for(Locator::XPath(&title("Pairing")))
        .await
        .send_keys(&format!("Pairs{}", char::from(Key::Tab)))
        .await
        .expect("name");
    fay.wait_for(Locator::XPath("//header[@data-title='Pairs']")).await;
    fay.next_phase("vote").await;
    al.wait_for(Locator::XPath("//h3[contains(@class,'cluster-name') and normalize-space(.)='Demos']")).await;
    fay.click(Locator::Css("#prev-phase")).await;
    al.wait_phase("group").await;
    al.wait_for(Locator::XPath(&title("Demos")))
        .await
        .send_keys(&format!("Show{}", char::from(Key::Tab)))
        .await
        .expect("name");
    fay.wait_for(Locator::XPath("//header[@data-title='Show']")).await;
    al.click_on_item("Demos", "merge-cluster").await;
    al.click_on_item("Pairing", "put-here").await;
    fay.wait_for(Locator::XPath("//header[@data-title='Pairs / Show']")).await;

    // Done says "1 action item"; a half-typed due date is pointed out, not dropped.
    for phase in ["vote", "discuss", "actions"] {
        fay.next_phase(phase).await;
    }
    al.wait_phase("actions").await;
    al.wait_for(Locator::Css("#action-text")).await.send_keys("Write a runbook").await.expect("text");
    al.wait_for(Locator::Css("#action-due")).await.send_keys("12").await.expect("half a date");
    al.click(Locator::Css("#add-action")).await;
    al.wait_for(Locator::Css("#action-problem")).await;
    al.wait_for(Locator::Css("#connection[data-state='connected'][data-pending='0']")).await;
    let viewer = hindsight_tests::SyncPeer::open(&server.ws_url(), board.board_id).await.expect("a viewer");
    assert!(Board::read(viewer.doc()).expect("a board").action_items.is_empty(), "added without its date");
    al.eval("(() => { const d = document.querySelector('#action-due'); d.value = ''; return true; })()").await;
    al.click(Locator::Css("#add-action")).await;
    fay.wait_for(Locator::Css(".action-item")).await;
    fay.next_phase("done").await;
    al.wait_js("document.querySelector('#summary .summary-head').innerText.includes('· 1 action item')").await;
    al.wait_for(Locator::XPath("//span[@class='ranked-title' and normalize-space(.)='Pairs / Show']")).await;

    for page in [fay, al] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}
