//! Browser tests: what someone is typing survives everything the others do to the board.
//!
//! In each phase, one person types into a field (the note box, a note's editor, a cluster's name,
//! the action form) and leaves the caret in the middle, while two others change the board in every
//! way that phase allows. Afterwards the same field still has the focus, the text and the caret,
//! and what was typed is saved.

use fantoccini::Locator;
use fantoccini::key::Key;
use hindsight_tests::browser::{Browser, Page};
use hindsight_tests::{Participant, TestServer};

fn key(key: Key) -> String {
    char::from(key).to_string()
}

/// Waits until `page` shows an action item reading `text`.
async fn wait_for_action(page: &Page, text: &str) {
    let xpath = format!("//li[contains(@class,'action-item')][.//span[normalize-space(.)='{text}']]");
    page.wait_for(Locator::XPath(&xpath)).await;
}

/// Write, then Reveal: the note box keeps its text through a timer, others' notes, a settings
/// change and a newcomer; an open editor stays open while its note is revealed and moves.
#[tokio::test]
async fn typing_a_note_survives_what_others_do_in_write_and_reveal() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Typing retro", "start-stop-continue").await;
    let browser = Browser::launch().await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&board.url, "Ann").await;
    let bob = browser.participant(&board.url, "Bob").await;
    ann.add_note("stop", "Friday deploys").await;
    bob.add_note("start", "Pair more").await;
    bob.add_note("continue", "Demos").await;
    fay.click(Locator::Css("#settings")).await;

    // Write: Ann types a note, caret in the middle, and does not press Enter.
    ann.start_typing(Locator::Css(".column[data-column='start'] textarea.new-note"), "Write tests", 5).await;
    fay.click(Locator::Css(".start-timer[data-minutes='5']")).await;
    bob.add_note("stop", "Late standups").await;
    bob.edit_note("continue", "Demos", "Demo weekly").await;
    bob.delete_note("start", "Pair more").await;
    bob.click(Locator::Css("#ready")).await;
    let budget = fay.wait_for(Locator::Css("#setting-budget")).await;
    budget.clear().await.expect("clear the budget");
    budget.send_keys(&format!("7{}", key(Key::Tab))).await.expect("a new budget");
    let _cy = Participant::join(&server, board.board_id, "Cy").await.expect("Cy joins");
    fay.click(Locator::Css("#stop-timer")).await;
    fay.click(Locator::Css(".start-timer[data-minutes='10']")).await;

    // Ann's page has seen all of it...
    ann.wait_person_status("Bob", "2 notes").await;
    ann.wait_for(Locator::XPath(
        "//li[contains(@class,'person') and contains(@class,'ready')]//span[starts-with(normalize-space(.),'Bob')]",
    ))
    .await;
    ann.wait_person_status("Cy", "thinking…").await;
    ann.wait_js("document.querySelector('#timer') && /^(10|9):/.test(document.querySelector('#timer').textContent)")
        .await;
    // ...and her note is as she left it.
    ann.assert_typing("Write tests", 5).await;
    ann.keep_typing(" first").await;
    ann.assert_typing("Write first tests", 11).await;
    ann.keep_typing(&key(Key::Enter)).await;
    ann.wait_for_note("start", "Write first tests").await;
    // The facilitator's settings stayed open through the timer and the change.
    fay.wait_for(Locator::Css(".settings-panel #setting-budget")).await;
    assert_eq!(budget.prop("value").await.expect("budget").as_deref(), Some("7"));

    // Reveal: Ann edits her unrevealed note while the facilitator moves to Reveal and reveals
    // it, and more.
    let note = ann.wait_for_note("stop", "Friday deploys").await;
    note.find(Locator::Css(".edit-note")).await.expect("edit").click().await.expect("open the editor");
    ann.start_typing(Locator::Css(".column[data-column='stop'] textarea.note-editor"), " again", 6).await;
    fay.next_phase("reveal").await;
    ann.wait_phase("reveal").await;
    fay.click(Locator::Css(".reveal-column[data-column='start']")).await;
    fay.click(Locator::Css(".reveal-column[data-column='stop']")).await;
    bob.wait_for_note("stop", "Late standups").await;
    bob.edit_note("stop", "Late standups", "Late standups, again").await;
    fay.click(Locator::Css("#reveal-all")).await;
    fay.click(Locator::Css(".start-timer[data-minutes='2']")).await;
    ann.wait_for_note("continue", "Demo weekly").await;
    ann.wait_for_note("stop", "Late standups, again").await;
    ann.wait_js("/^(2|1):/.test(document.querySelector('#timer').textContent)").await;
    ann.assert_typing("Friday deploys again", 6).await;
    ann.keep_typing(&format!(",{}", key(Key::Enter))).await;
    bob.wait_for_note("stop", "Friday, deploys again").await;

    for page in [fay, ann, bob] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

/// Group: a cluster's name keeps its text, focus and caret while others group, ungroup, name
/// other clusters and start a timer; a pending "Group…" pick stays picked; a name is saved when
/// its author pauses, without leaving the field; three people naming three clusters at once
/// all keep their names.
#[tokio::test]
async fn naming_a_cluster_survives_what_others_do_in_group() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Grouping retro", "start-stop-continue").await;
    let browser = Browser::launch().await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&board.url, "Ann").await;
    let bob = browser.participant(&board.url, "Bob").await;
    ann.add_note("stop", "A1 deploys").await;
    ann.add_note("start", "A2 tests").await;
    bob.add_note("stop", "B1 standups").await;
    bob.add_note("continue", "B2 demos").await;
    bob.add_note("start", "B3 pairing").await;
    fay.add_note("continue", "F1 docs").await;
    fay.add_note("start", "F2 reviews").await;
    fay.add_note("stop", "F3 oncall").await;
    fay.wait_person_status("Bob", "3 notes").await;
    fay.wait_person_status("Ann", "2 notes").await;
    fay.next_phase("reveal").await;
    fay.click(Locator::Css("#reveal-all")).await;
    fay.next_phase("group").await;
    for page in [&ann, &bob] {
        page.wait_phase("group").await;
        page.wait_for(Locator::XPath(&Page::item_xpath("F3 oncall"))).await;
    }
    fay.group("A1 deploys", "B1 standups").await;
    bob.group("B2 demos", "F1 docs").await;

    // Ann picks a note up to move it, then names the first cluster, caret in the middle.
    ann.click_on_item("A2 tests", "group-note").await;
    let title_of = |note: &str| format!("{}//input[contains(@class,'cluster-title')]", Page::item_xpath(note));
    ann.start_typing(Locator::XPath(&title_of("A1 deploys")), "Our week", 3).await;

    // The others group, ungroup, name their clusters (one leaves the field, one only pauses)...
    bob.start_typing(Locator::XPath(&title_of("B2 demos")), "Demo culture", 12).await;
    bob.keep_typing(&key(Key::Tab)).await;
    fay.group("F3 oncall", "B3 pairing").await;
    fay.start_typing(Locator::XPath(&title_of("F3 oncall")), "On call load", 12).await;
    bob.click_on_item("F1 docs", "ungroup-note").await;
    bob.group("F2 reviews", "B2 demos").await;
    let header = |title: &str| format!("//header[@class='cluster-header' and @data-title='{title}']");
    // Fay never leaves her field: her name is saved at her pause.
    bob.wait_for(Locator::XPath(&header("On call load"))).await;
    fay.assert_typing("On call load", 12).await;
    fay.click(Locator::Css(".start-timer[data-minutes='5']")).await;

    // ...and Ann has seen all of it, her name saved at her pause too...
    ann.wait_for(Locator::XPath(&header("Demo culture"))).await;
    ann.wait_for(Locator::XPath(&header("On call load"))).await;
    ann.wait_for(Locator::XPath(&format!("{}[.//p[normalize-space(.)='F2 reviews']]", Page::item_xpath("B2 demos"))))
        .await;
    ann.wait_for(Locator::Css("#timer")).await;
    bob.wait_for(Locator::XPath(&header("Our week"))).await;
    // ...while her field, her caret and her pick are as she left them.
    ann.assert_typing("Our week", 3).await;
    ann.wait_for(Locator::Css("#cancel-pick")).await;
    ann.keep_typing(&format!(" new{}", key(Key::Tab))).await;
    bob.wait_for(Locator::XPath(&header("Our new week"))).await;
    ann.click_on_item("F3 oncall", "put-here").await;
    bob.wait_for(Locator::XPath(&format!("{}[.//p[normalize-space(.)='A2 tests']]", Page::item_xpath("F3 oncall"))))
        .await;
    for title in ["Our new week", "Demo culture", "On call load"] {
        fay.wait_for(Locator::XPath(&header(title))).await;
    }

    for page in [fay, ann, bob] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

/// Discuss, then Actions: a half-typed action and owner survive others adding and deleting
/// actions and a timer; then they are added as typed.
#[tokio::test]
async fn a_half_typed_action_survives_what_others_do() {
    let server = TestServer::spawn().await;
    let board = server.create_board("Action retro", "start-stop-continue").await;
    let browser = Browser::launch().await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&board.url, "Ann").await;
    let bob = browser.participant(&board.url, "Bob").await;
    ann.add_note("stop", "Friday deploys").await;
    bob.add_note("start", "Pairing").await;
    fay.wait_person_status("Bob", "1 note").await;
    fay.wait_person_status("Ann", "1 note").await;
    fay.next_phase("reveal").await;
    fay.click(Locator::Css("#reveal-all")).await;
    for phase in ["group", "vote", "discuss"] {
        fay.next_phase(phase).await;
    }
    fay.click_on_item("Friday deploys", "focus-item").await;
    ann.wait_for(Locator::XPath("//h2[@id='focused-title' and normalize-space(.)='Friday deploys']")).await;

    // Discuss: Ann half-types an action for the focused item.
    ann.wait_for(Locator::Css("#action-text")).await.send_keys("Move deploys").await.expect("text");
    ann.start_typing(Locator::Css("#action-owner"), "An", 1).await;
    // The facilitator moves the discussion on: the form stays, and its action goes to what is
    // discussed when it is added.
    fay.click_on_item("Pairing", "focus-item").await;
    ann.wait_for(Locator::XPath("//h2[@id='focused-title' and normalize-space(.)='Pairing']")).await;
    add_action(&bob, "Bob adds one", "Bob").await;
    add_action(&fay, "Fay adds one", "Fay").await;
    fay.click(Locator::Css(".start-timer[data-minutes='2']")).await;
    wait_for_action(&ann, "Fay adds one").await;
    wait_for_action(&ann, "Bob adds one").await;
    bob.click(Locator::XPath("//li[contains(@class,'action-item')][.//span[normalize-space(.)='Bob adds one']]//button[contains(@class,'delete-action')]")).await;
    ann.wait_js("!document.body.textContent.includes('Bob adds one')").await;
    ann.wait_for(Locator::Css("#timer")).await;
    ann.assert_typing("An", 1).await;
    ann.wait_js("document.querySelector('#action-text').value === 'Move deploys'").await;
    ann.keep_typing("n").await;
    ann.click(Locator::Css("#add-action")).await;
    wait_for_action(&bob, "Move deploys").await;
    bob.wait_for(Locator::XPath("//li[contains(@class,'action-item')][.//span[normalize-space(.)='Owner: Ann']]"))
        .await;

    // Actions: the same with the whole list.
    fay.next_phase("actions").await;
    ann.wait_phase("actions").await;
    ann.start_typing(Locator::Css("#action-text"), "Second action", 6).await;
    add_action(&bob, "Bob adds another", "Bob").await;
    fay.click(Locator::Css(".start-timer[data-minutes='5']")).await;
    wait_for_action(&ann, "Bob adds another").await;
    ann.wait_js("/^(5|4):/.test(document.querySelector('#timer').textContent)").await;
    ann.assert_typing("Second action", 6).await;
    ann.keep_typing(&key(Key::Enter)).await;
    wait_for_action(&fay, "Second action").await;

    for page in [fay, ann, bob] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

/// Adds an action item from the action form.
async fn add_action(page: &Page, text: &str, owner: &str) {
    page.wait_for(Locator::Css("#action-text")).await.send_keys(text).await.expect("text");
    page.wait_for(Locator::Css("#action-owner")).await.send_keys(owner).await.expect("owner");
    page.click(Locator::Css("#add-action")).await;
    wait_for_action(page, text).await;
}
