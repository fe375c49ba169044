//! `hindsight-team-load`: a benchmark of a big team's page. It builds a team of `--retros` finished
//! retros (default 200) with `--actions` action items each (default 10: 2,000 in all) through the
//! real API and protocol, then measures what opening the team page costs: over the protocol, the
//! time from a fresh connection's `request` until the whole ledger arrived and the bytes the
//! server sent (median and p90 of `--runs` opens); in headless Chromium with a cold cache, the
//! time from navigation start until the page shows every action and the charts; and the ledger's
//! size in storage once the server compacted it at shutdown.
//!
//! Run it with `just bench-team` (a release build; the server runs in this process).

use std::time::Instant;

use anyhow::Context;
use hindsight_server::store::Store;
use hindsight_shared::ledger::Ledger;
use hindsight_shared::schema::{ActionItem, Phase};
use hindsight_tests::browser::Browser;
use hindsight_tests::percentiles;
use hindsight_tests::team::{TeamPage, create_team, create_team_board};
use hindsight_tests::{Participant, TestServer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |name: &str, default: usize| -> anyhow::Result<usize> {
        let args: Vec<String> = std::env::args().collect();
        match args.iter().position(|a| a == name) {
            Some(at) => args.get(at + 1).context("a number after the flag")?.parse().context(name.to_owned()),
            None => Ok(default),
        }
    };
    let (retros, actions, runs) = (arg("--retros", 200)?, arg("--actions", 10)?, arg("--runs", 9)?);
    let server = TestServer::spawn_with(|config| {
        config.max_team_retros = retros.max(1_000);
        // One address builds the whole team.
        config.board_creations_per_minute = u32::MAX;
        config.joins_per_minute = u32::MAX;
    })
    .await;
    let team = create_team(&server.http_url(), "A big team").await?;
    let started = Instant::now();
    for r in 0..retros {
        let board = create_team_board(&server.http_url(), team.team_id, &format!("Sprint {r}")).await?;
        let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
        fay.set_phase(Phase::Actions).await?;
        for a in 0..actions {
            let item = ActionItem {
                id: format!("a{a}"),
                text: format!("Action {a} of sprint {r}: make the deploy pipeline faster"),
                owner: format!("Owner {}", a % 7),
                due: "2026-12-15".into(),
                cluster: None,
            };
            fay.put_action(&item).await?;
        }
        fay.set_phase(Phase::Done).await?;
        fay.close().await?;
    }
    let expected = retros * actions;
    let mut page = TeamPage::open(&server.ws_url(), team.team_id).await?;
    page.pump_until("every retro recorded", |l| {
        l.actions.len() == expected && l.retros.values().all(|r| r.done_at.is_some())
    })
    .await?;
    println!("Built a team of {retros} retros and {expected} actions in {:.1} s.\n", started.elapsed().as_secs_f64());

    let (mut times, mut reads, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let opened = Instant::now();
        let mut fresh = TeamPage::open(&server.ws_url(), team.team_id).await?;
        times.push(opened.elapsed().as_secs_f64() * 1000.0);
        let read = Instant::now();
        let ledger: Ledger = fresh.ledger();
        reads.push(read.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(ledger.actions.len() == expected, "the whole ledger arrived at once");
        bytes.push(fresh.peer().frames().iter().map(Vec::len).sum::<usize>() as f64);
    }
    let ((t50, t90), (r50, r90), (b50, _)) =
        (percentiles(&mut times), percentiles(&mut reads), percentiles(&mut bytes));
    println!("| measure | median | p90 |\n|---|---|---|");
    println!("| protocol: connect, `request`, the whole ledger in a replica (ms) | {t50:.1} | {t90:.1} |");
    println!("| reading it for the page (`Ledger::read`, ms) | {r50:.1} | {r90:.1} |");
    println!("| bytes the server sent | {b50:.0} | |");

    let browser = Browser::launch().await;
    let mut rendered = Vec::new();
    for _ in 0..runs.min(5) {
        let page = browser.open(&format!("{}/t/{}", server.http_url(), team.team_id)).await;
        page.wait_js(&format!("document.querySelectorAll('.team-action').length > 0 && document.querySelectorAll('#chart-notes rect.bar').length === {retros}")).await;
        let ms = page.eval("performance.now()").await.as_f64().context("the page's clock")?;
        rendered.push(ms);
        page.close().await;
    }
    if !rendered.is_empty() {
        let (r50, r90) = percentiles(&mut rendered);
        println!("| browser, cold cache: navigation to the rendered page (ms) | {r50:.0} | {r90:.0} |");
    }
    drop(browser);

    let stopped = server.stop().await;
    let store = Store::open(stopped.data_dir())?;
    let stored = store.load(team.team_id).await?.context("the ledger is stored")?;
    store.close().await;
    let on_disk = stored.snapshot.len() + stored.changes.iter().map(Vec::len).sum::<usize>();
    println!("| ledger in storage after compaction (bytes) | {on_disk} | |");
    Ok(())
}
