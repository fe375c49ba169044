//! In the browser, a team as it would use Hindsight (issue 14): a team made from the home page,
//! two retros started from its page, the second beginning with a review of the first's actions,
//! and the team page with the follow-through, its charts and its filters; axe-core finds no
//! serious or critical violation on the team page or in Review. Screenshots land in
//! `tests/artifacts/` (`team-review`, `team-page`).

use fantoccini::Locator;
use fantoccini::key::Key;
use hindsight_tests::TestServer;
use hindsight_tests::browser::{Browser, Page};

/// From the team page, starts a retro called `title` and joins it as its facilitator.
async fn start_retro(team: &Page, title: &str) {
    team.wait_for(Locator::Css("#retro-title")).await.send_keys(title).await.expect("title");
    team.click(Locator::Css("#new-retro")).await;
    team.join("Fay").await;
    team.wait_for(Locator::Css("#facilitator-badge")).await;
}

/// Adds an action item (in Discuss or Actions).
async fn add_action(page: &Page, text: &str, owner: &str) {
    page.wait_for(Locator::Css("#action-text")).await.send_keys(text).await.expect("text");
    page.wait_for(Locator::Css("#action-owner")).await.send_keys(owner).await.expect("owner");
    page.click(Locator::Css("#add-action")).await;
    page.wait_for(Locator::XPath(&format!(
        "//li[contains(@class,'action-item')][.//span[normalize-space(.)='{text}']]"
    )))
    .await;
}

/// The facilitator moves through every phase from `from` to Done.
async fn to_done(page: &Page, from: &[&str]) {
    for phase in from {
        page.next_phase(phase).await;
    }
}

#[tokio::test]
async fn a_team_runs_two_retros_and_follows_up_on_its_page() {
    let server = TestServer::spawn().await;
    let browser = Browser::launch().await;

    // A team, from the home page.
    let page = browser.open(&format!("{}/", server.http_url())).await;
    page.wait_for(Locator::Css("#team-name-input")).await.send_keys("Platform").await.expect("name");
    page.click(Locator::Css("#create-team")).await;
    page.wait_for(Locator::XPath("//h1[@id='team-name' and normalize-space(.)='Platform']")).await;
    page.wait_state("connected").await;
    let team_url = page.client().current_url().await.expect("url").to_string();
    assert!(team_url.contains("/t/") && !team_url.contains('#'), "the team link, without its key: {team_url}");
    page.wait_for(Locator::Css("#team-settings-title")).await;

    // Retro 1: nothing to review yet; two actions.
    start_retro(&page, "Sprint 1").await;
    page.wait_phase("write").await;
    assert!(page.client().find(Locator::Css(".step[data-phase='review']")).await.is_err(), "no Review step");
    page.add_note("start", "More pairing").await;
    to_done(&page, &["reveal", "group", "vote", "discuss", "actions"]).await;
    add_action(&page, "Fix the flaky test", "Ada").await;
    add_action(&page, "Write the runbook", "Bo").await;
    to_done(&page, &["done"]).await;
    page.wait_for(Locator::Css("#connection[data-pending='0']")).await;

    page.client().goto(&team_url).await.expect("the team page");
    page.wait_for(Locator::XPath(
        "//li[contains(@class,'team-action')][.//strong[normalize-space(.)='Write the runbook']]",
    ))
    .await;
    page.wait_for(Locator::Css("#chart-notes rect.bar")).await;

    // Retro 2 begins with the review of retro 1's actions.
    start_retro(&page, "Sprint 2").await;
    page.wait_phase("review").await;
    page.wait_for(Locator::Css(".step[data-phase='review']")).await;
    let row = |text: &str| format!("//li[contains(@class,'review-item')][.//strong[normalize-space(.)='{text}']]");
    page.click(Locator::XPath(&format!("{}//input[@value='done']", row("Fix the flaky test")))).await;
    page.click(Locator::XPath(&format!("{}//input[@value='dropped']", row("Write the runbook")))).await;
    let reason = page
        .wait_for(Locator::XPath(&format!("{}//input[contains(@class,'review-reason')]", row("Write the runbook"))))
        .await;
    reason.send_keys(&format!("We retired the service{}", char::from(Key::Tab))).await.expect("reason");
    page.wait_for(Locator::XPath(&format!("{}[@data-status='dropped']", row("Write the runbook")))).await;
    page.wait_for(Locator::Css("#connection[data-pending='0']")).await;
    let violations = page.accessibility_violations().await;
    assert!(violations.is_empty(), "Review: {violations:#?}");
    page.screenshot("team-review").await;
    page.next_phase("write").await;
    page.add_note("stop", "Friday deploys").await;
    to_done(&page, &["reveal", "group", "vote", "discuss", "actions"]).await;
    add_action(&page, "Move deploys to Tuesday", "Cy").await;
    to_done(&page, &["done"]).await;
    page.wait_for(Locator::Css("#connection[data-pending='0']")).await;

    // The team page: what was done, what was dropped and why, what is open; two retros charted.
    page.client().goto(&team_url).await.expect("the team page");
    page.click(Locator::Css(".filter[data-filter='all']")).await;
    let action = |text: &str| format!("//li[contains(@class,'team-action')][.//strong[normalize-space(.)='{text}']]");
    page.wait_for(Locator::XPath(&format!("{}[@data-status='done']", action("Fix the flaky test")))).await;
    page.wait_for(Locator::XPath(&format!("{}[@data-status='dropped']", action("Write the runbook")))).await;
    let reason = page
        .wait_for(Locator::XPath(&format!(
            "{}//input[contains(@class,'team-action-reason')]",
            action("Write the runbook")
        )))
        .await;
    assert_eq!(reason.prop("value").await.expect("value").as_deref(), Some("We retired the service"));
    page.wait_for(Locator::XPath(&format!("{}[@data-status='open']", action("Move deploys to Tuesday")))).await;
    page.wait_js("document.querySelectorAll('#chart-follow-through rect.bar').length >= 2").await;
    page.wait_js("document.querySelectorAll('#chart-writers rect.bar').length === 2").await;
    // A status changed here reaches the ledger; the Done filter then shows it.
    let select = page
        .wait_for(Locator::XPath(&format!(
            "{}//select[contains(@class,'team-action-status')]",
            action("Move deploys to Tuesday")
        )))
        .await;
    select.select_by_value("doing").await.expect("choose doing");
    page.wait_for(Locator::XPath(&format!("{}[@data-status='doing']", action("Move deploys to Tuesday")))).await;
    page.wait_for(Locator::Css("#connection[data-pending='0']")).await;
    page.click(Locator::Css(".filter[data-filter='done']")).await;
    page.wait_js("document.querySelectorAll('.team-action').length === 1").await;
    page.click(Locator::Css(".filter[data-filter='all']")).await;
    page.wait_js("document.querySelectorAll('.team-action').length === 3").await;
    let violations = page.accessibility_violations().await;
    assert!(violations.is_empty(), "the team page: {violations:#?}");
    page.resize(1280, 1500).await;
    page.screenshot("team-page").await;

    // The home page lists the team beside its boards.
    page.client().goto(&format!("{}/", server.http_url())).await.expect("home");
    page.wait_for(Locator::XPath(
        "//li[contains(@class,'your-board')]//a[normalize-space(.)='Platform' and contains(@href,'/t/')]",
    ))
    .await;
}
