//! `hindsight-postmortem-load`: a benchmark of a big postmortem board: a timeline of `--events`
//! events (default 2,000, sent through the alert webhook) and `--factors` contributing factors
//! (default 200, each linked to the one a third of its index, a graph a few layers deep). It
//! prints the cold load (the server restarted, a fresh viewer's `request` until it holds the
//! whole board: time and bytes), and in headless Chromium the time from navigation start until
//! the lane shows its first 300 rows and the graph every factor, then from "Show all" until the
//! lane shows every event (median of `--runs`, default 5).
//!
//! Run it with `just bench-postmortem` (a release build; the server runs in this process).

use std::time::Instant;

use anyhow::Context;
use fantoccini::Locator;
use hindsight_shared::factors::Factor;
use hindsight_shared::schema::Phase;
use hindsight_shared::{alerts, api, edit};
use hindsight_tests::browser::Browser;
use hindsight_tests::percentiles;
use hindsight_tests::{Participant, SyncPeer, TestServer, http};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = |name: &str, default: usize| -> anyhow::Result<usize> {
        let args: Vec<String> = std::env::args().collect();
        match args.iter().position(|a| a == name) {
            Some(at) => args.get(at + 1).context("a number after the flag")?.parse().context(name.to_owned()),
            None => Ok(default),
        }
    };
    let (events, factors, runs) = (arg("--events", 2_000)?, arg("--factors", 200)?, arg("--runs", 5)?);
    let server = TestServer::spawn().await;
    let board = server.create_board("A long outage", "incident-postmortem").await;
    let mut fay = Participant::join_as_facilitator(&server, &board, "Fay").await?;
    let url =
        format!("{}{}", server.http_url(), api::alerts(board.board_id, &alerts::token_of_key(&board.facilitator_key)));
    let started = Instant::now();
    for batch in 0..events.div_ceil(100) {
        let alerts: Vec<serde_json::Value> = (batch * 100..((batch + 1) * 100).min(events))
            .map(|i| {
                serde_json::json!({
                    "status": "firing",
                    "labels": { "alertname": format!("Alert{i}"), "service": "checkout" },
                    "annotations": { "summary": format!("Alert {i}: error rate above threshold on checkout") },
                    "startsAt": format!("2026-11-30T{:02}:{:02}:{:02}Z", 10 + i / 3600, i / 60 % 60, i % 60),
                    "fingerprint": format!("{i:016x}"),
                })
            })
            .collect();
        let answer = http::post_json(&url, &serde_json::json!({ "alerts": alerts })).await?;
        anyhow::ensure!(answer.status == 202, "alerts answered {} {}", answer.status, answer.text());
    }
    fay.set_phase(Phase::Group).await?;
    for chunk in (0..factors).collect::<Vec<_>>().chunks(50) {
        let made: Vec<Factor> = chunk
            .iter()
            .map(|i| Factor {
                id: format!("f{i}"),
                text: format!("Factor {i}: a check that was missing"),
                kind: ["trigger", "contributing", "mitigator", "risk"][i % 4].into(),
                ..Factor::default()
            })
            .collect();
        fay.raw_board_change(move |tx| {
            for factor in &made {
                edit::put_factor(tx, factor)?;
            }
            Ok(())
        })
        .await?
        .accepted()?;
    }
    for chunk in (1..factors).collect::<Vec<_>>().chunks(50) {
        let links: Vec<usize> = chunk.to_vec();
        fay.raw_board_change(move |tx| {
            for i in &links {
                edit::link_factors(tx, &format!("f{i}"), &format!("f{}", i / 3), true)?;
            }
            Ok(())
        })
        .await?
        .accepted()?;
    }
    fay.pump_until("the whole board", |p| p.board().timeline.len() == events && p.board().factors.len() == factors)
        .await?;
    println!(
        "Built a board of {events} timeline events and {factors} factors in {:.1} s.\n",
        started.elapsed().as_secs_f64()
    );
    let reader = http::join_board(&server.http_url(), board.board_id, "Reader", None).await?;
    drop(fay);

    let stopped = server.stop().await;
    let server = stopped.start_again().await;
    let opened = Instant::now();
    let viewer = SyncPeer::open(&server.ws_url(), board.board_id).await?;
    let cold = opened.elapsed().as_secs_f64() * 1000.0;
    let bytes: usize = viewer.frames().iter().map(Vec::len).sum();
    anyhow::ensure!(viewer.board().timeline.len() == events, "the whole timeline arrived");
    println!("| measure | median | p90 |\n|---|---|---|");
    println!("| cold load after a restart: `request` to the whole board in a replica (ms) | {cold:.0} | |");
    println!("| bytes the server sent for it | {bytes} | |");

    let browser = Browser::launch().await;
    let identity =
        serde_json::json!({ "participant_id": reader.participant_id, "desk_id": reader.desk_id.to_string() });
    let (mut rendered, mut all) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        // The identity goes in the origin's storage from a page without the client, so the board
        // loads with a cold cache.
        let page = browser.open(&format!("{}/healthz", server.http_url())).await;
        page.eval(&format!(
            "localStorage.setItem('hindsight:identity:{}', {})",
            board.board_id,
            serde_json::to_string(&identity.to_string())?
        ))
        .await;
        page.client().goto(&board.url).await.context("the board")?;
        page.wait_for(Locator::Css("#timeline")).await;
        page.wait_js(&format!(
            "document.querySelectorAll('.timeline-event').length >= {} && document.querySelectorAll('#factor-graph .factor-node').length === {factors}",
            events.min(300) - 10
        ))
        .await;
        let ms = page.eval("performance.now()").await.as_f64().context("the page's clock")?;
        rendered.push(ms);
        // Then every event of the lane, on demand: from grouping on, the lane starts folded.
        if events > 300 {
            page.click(Locator::Css("#timeline > summary")).await;
            page.wait_js("document.getElementById('timeline').open").await;
            let before = page.eval("performance.now()").await.as_f64().context("the page's clock")?;
            page.click(Locator::Css("#more-events")).await;
            page.wait_js(&format!("document.querySelectorAll('.timeline-event').length === {events}")).await;
            all.push(page.eval("performance.now()").await.as_f64().context("the page's clock")? - before);
        }
        page.close().await;
    }
    let (r50, r90) = percentiles(&mut rendered);
    println!(
        "| Chromium, cold cache: navigation to the lane's first 300 rows and the whole graph (ms, as polled) | {r50:.0} | {r90:.0} |"
    );
    let (a50, a90) = percentiles(&mut all);
    println!("| Chromium: \"Show all\" to every event of the lane drawn (ms, as polled) | {a50:.0} | {a90:.0} |");
    server.shutdown().await;
    Ok(())
}
