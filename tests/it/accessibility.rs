//! Browser tests of the board for keyboard and screen-reader users: axe-core finds no serious or
//! critical violation on any view, and a retro run from the keyboard alone keeps the focus where
//! each action happened (never dropped to the page's body), with phase changes announced.

use fantoccini::Locator;
use fantoccini::key::Key;
use hindsight_tests::TestServer;
use hindsight_tests::browser::{Browser, Page};

fn key(key: Key) -> String {
    char::from(key).to_string()
}

/// Records the serious and critical violations axe-core finds on `page`, under `view`.
async fn audit(found: &mut Vec<String>, views: &mut usize, page: &Page, view: &str) {
    *views += 1;
    for violation in page.accessibility_violations().await {
        found.push(format!("{view}: {violation}"));
    }
}

#[tokio::test]
async fn no_view_has_a_serious_accessibility_violation() {
    let server = TestServer::spawn().await;
    let browser = Browser::launch().await;
    let (mut found, mut views) = (Vec::new(), 0);

    let home = browser.open(&format!("{}/", server.http_url())).await;
    home.wait_for(Locator::Css("#title")).await;
    audit(&mut found, &mut views, &home, "home").await;
    home.close().await;

    let board = server.create_board("Accessible retro", "start-stop-continue").await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.open(&board.url).await;
    ann.wait_for(Locator::Css("#join-name")).await;
    audit(&mut found, &mut views, &ann, "join").await;
    ann.join("Ann").await;
    ann.add_note("stop", "Friday deploys").await;
    ann.add_note("stop", "Late standups").await;
    ann.add_note("start", "Pairing").await;
    audit(&mut found, &mut views, &ann, "write").await;
    fay.click(Locator::Css("#settings")).await;
    audit(&mut found, &mut views, &fay, "write, facilitator, settings open").await;
    fay.click(Locator::Css("#settings")).await;
    fay.click(Locator::Css("#facilitator-link")).await;
    audit(&mut found, &mut views, &fay, "facilitator link").await;
    fay.wait_for(Locator::Css("#facilitator-link-text")).await.send_keys(&key(Key::Escape)).await.expect("close");
    fay.wait_js(
        "!document.querySelector('#facilitator-link-panel') && document.activeElement.id === 'facilitator-link'",
    )
    .await;
    ann.click(Locator::Css("#export")).await;
    audit(&mut found, &mut views, &ann, "export menu").await;
    ann.click(Locator::Css("#board-title")).await;
    ann.wait_js("!document.querySelector('[role=menu]')").await;

    fay.wait_person_status("Ann", "3 notes").await;
    fay.next_phase("reveal").await;
    fay.click(Locator::Css(".reveal-column[data-column='stop']")).await;
    audit(&mut found, &mut views, &fay, "reveal").await;
    fay.click(Locator::Css("#reveal-all")).await;
    fay.next_phase("group").await;
    ann.wait_phase("group").await;
    ann.group("Friday deploys", "Late standups").await;
    audit(&mut found, &mut views, &ann, "group").await;
    ann.resize(390, 844).await;
    audit(&mut found, &mut views, &ann, "group, phone").await;
    ann.resize(1280, 860).await;
    fay.next_phase("vote").await;
    ann.wait_phase("vote").await;
    ann.vote("Pairing", 1).await;
    audit(&mut found, &mut views, &ann, "vote").await;
    fay.next_phase("discuss").await;
    fay.click_on_item("Friday deploys", "focus-item").await;
    ann.wait_for(Locator::Css("#focused-title")).await;
    audit(&mut found, &mut views, &ann, "discuss").await;
    audit(&mut found, &mut views, &fay, "discuss, facilitator").await;
    fay.next_phase("actions").await;
    ann.wait_phase("actions").await;
    audit(&mut found, &mut views, &ann, "actions").await;
    fay.next_phase("done").await;
    ann.wait_phase("done").await;
    audit(&mut found, &mut views, &ann, "done").await;
    fay.click(Locator::Css("#show-roti")).await;
    ann.wait_for(Locator::Css("#roti-hidden, #roti-chart")).await;
    audit(&mut found, &mut views, &ann, "done, ROTI results").await;
    ann.client().goto(&format!("{}/", server.http_url())).await.expect("home");
    ann.wait_for(Locator::Css(".your-boards")).await;
    audit(&mut found, &mut views, &ann, "home, your boards").await;

    let unknown =
        browser.open(&format!("{}/b/{}", server.http_url(), hindsight_shared::ids::DocumentId::random())).await;
    unknown.wait_for(Locator::Css("#join-name")).await.send_keys("Nobody").await.expect("a name");
    unknown.click(Locator::Css("#join")).await;
    unknown.wait_for(Locator::Css("#not-found")).await;
    audit(&mut found, &mut views, &unknown, "unknown board").await;

    assert!(found.is_empty(), "{} serious or critical violations on {views} views:\n{}", found.len(), found.join("\n"));
    println!("axe-core: 0 serious or critical violations on {views} views");
    for page in [fay, ann, unknown] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_keyboard_only_retro_keeps_the_focus_where_each_action_happened() {
    let server = TestServer::spawn().await;
    let browser = Browser::launch().await;
    let enter = key(Key::Enter);

    // The template picker is one stop for Tab, and the arrow keys choose within it.
    let home = browser.open(&format!("{}/", server.http_url())).await;
    let first = home.wait_for(Locator::Css(".template[aria-checked='true']")).await;
    first.send_keys(&key(Key::Right)).await.expect("arrow right");
    home.wait_js("document.activeElement.getAttribute('aria-checked') === 'true' && document.activeElement.dataset.template === 'mad-sad-glad'").await;
    home.close().await;

    let board = server.create_board("Keyboard retro", "start-stop-continue").await;
    let fay = browser.facilitator(&board.url, &board.facilitator_key, "Fay").await;
    let ann = browser.participant(&board.url, "Ann").await;

    // The Export menu: arrows move through it, Escape closes it and gives the focus back.
    ann.wait_for(Locator::Css("#export")).await.send_keys(&key(Key::Down)).await.expect("open the menu");
    ann.wait_js("document.activeElement.classList.contains('export-md')").await;
    ann.client().active_element().await.expect("focus").send_keys(&key(Key::Down)).await.expect("down");
    ann.wait_js("document.activeElement.classList.contains('export-csv')").await;
    ann.client().active_element().await.expect("focus").send_keys(&key(Key::Escape)).await.expect("escape");
    ann.wait_js("document.activeElement.id === 'export' && !document.querySelector('[role=menu]')").await;

    // Write: Enter adds the note and the focus stays in the box for the next one.
    for text in ["Friday deploys", "Late standups"] {
        let composer = ann.wait_for(Locator::Css(".column[data-column='stop'] textarea.new-note")).await;
        composer.send_keys(&format!("{text}{enter}")).await.expect("write");
        ann.wait_for_note("stop", text).await;
        ann.wait_js("document.activeElement.matches(\".column[data-column='stop'] textarea.new-note\")").await;
    }
    fay.wait_person_status("Ann", "2 notes").await;

    // Moving the phase keeps the facilitator on the button, and tells everyone.
    let next = fay.wait_for(Locator::Css("#next-phase")).await;
    next.send_keys(&enter).await.expect("next phase");
    fay.wait_phase("reveal").await;
    fay.wait_js("document.activeElement.id === 'next-phase'").await;
    ann.wait_js("document.querySelector('#announcer').textContent.startsWith('Now: Reveal')").await;

    // The column's reveal button goes once used: the focus goes to the column, not the body.
    fay.wait_for(Locator::Css(".reveal-column[data-column='stop']")).await.send_keys(&enter).await.expect("reveal");
    fay.wait_for_note("stop", "Friday deploys").await;
    fay.wait_js("document.activeElement.matches(\"section.column[data-column='stop']\")").await;
    fay.wait_for(Locator::Css("#reveal-all")).await.send_keys(&enter).await.expect("reveal all");
    fay.wait_js("document.activeElement.id === 'reveal-all'").await;

    // Group: "Group…" then "Put here", and the focus is on the new cluster.
    fay.wait_for(Locator::Css("#next-phase")).await.send_keys(&enter).await.expect("next phase");
    ann.wait_phase("group").await;
    let pick = format!("{}//button[contains(@class,'group-note')]", Page::item_xpath("Friday deploys"));
    ann.wait_for(Locator::XPath(&pick)).await.send_keys(&enter).await.expect("pick the note");
    let put = format!("{}//button[contains(@class,'put-here')]", Page::item_xpath("Late standups"));
    ann.wait_for(Locator::XPath(&put)).await.send_keys(&enter).await.expect("put it here");
    ann.wait_for(Locator::XPath("//article[contains(@class,'cluster')][.//p[normalize-space(.)='Friday deploys']]"))
        .await;
    ann.wait_js("document.activeElement.matches('article.item.cluster')").await;

    // Vote: the "+" keeps the focus while dots are left.
    fay.wait_for(Locator::Css("#next-phase")).await.send_keys(&enter).await.expect("next phase");
    ann.wait_phase("vote").await;
    let up = format!("{}//button[contains(@class,'vote-up')]", Page::item_xpath("Friday deploys"));
    ann.wait_for(Locator::XPath(&up)).await.send_keys(&enter).await.expect("a dot");
    ann.wait_for(Locator::XPath(&format!(
        "{}//span[@class='my-dots' and @data-dots='1']",
        Page::item_xpath("Friday deploys")
    )))
    .await;
    ann.wait_js("document.activeElement.matches('button.vote-up')").await;
    // The third dot is the most one item takes: "+" says it is unavailable, and keeps the focus.
    for dots in [2, 3] {
        ann.client().active_element().await.expect("focus").send_keys(&enter).await.expect("a dot");
        let xpath = format!("{}//span[@class='my-dots' and @data-dots='{dots}']", Page::item_xpath("Friday deploys"));
        ann.wait_for(Locator::XPath(&xpath)).await;
    }
    ann.wait_js("document.activeElement.matches(\"button.vote-up[aria-disabled='true']\")").await;

    // Discuss: "Discuss this" keeps the focus; an action added from the keyboard leaves the
    // focus in the action's first field, ready for the next.
    fay.wait_for(Locator::Css("#next-phase")).await.send_keys(&enter).await.expect("next phase");
    fay.wait_phase("discuss").await;
    let discuss = format!("{}//button[contains(@class,'focus-item')]", Page::item_xpath("Friday deploys"));
    fay.wait_for(Locator::XPath(&discuss)).await.send_keys(&enter).await.expect("discuss this");
    ann.wait_for(Locator::Css("#focused-title")).await;
    fay.wait_js("document.activeElement.matches('button.focus-item')").await;
    ann.wait_for(Locator::Css("#action-text"))
        .await
        .send_keys(&format!("Deploy on Tuesdays{enter}"))
        .await
        .expect("an action");
    fay.wait_for(Locator::XPath(
        "//li[contains(@class,'action-item')][.//span[normalize-space(.)='Deploy on Tuesdays']]",
    ))
    .await;
    ann.wait_js("document.activeElement.id === 'action-text'").await;

    // On to Done, from the keyboard.
    for phase in ["actions", "done"] {
        fay.wait_for(Locator::Css("#next-phase")).await.send_keys(&enter).await.expect("next phase");
        fay.wait_phase(phase).await;
        fay.wait_js("document.activeElement.id === 'next-phase'").await;
    }
    ann.wait_js("document.querySelector('#announcer').textContent.startsWith('Now: Done')").await;

    for page in [fay, ann] {
        page.close().await;
    }
    browser.quit().await;
    server.shutdown().await;
}
