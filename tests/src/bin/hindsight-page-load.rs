//! `hindsight-page-load`: a benchmark of a first visit. It prints the bytes of the client's files
//! as the server sends them (as they are, gzip, brotli), then the time from navigation start until
//! a board shows (`#stage`) in headless Chromium with a cold cache, offering brotli and offering
//! gzip only, over loopback and over an emulated 10 Mbit/s link with 40 ms latency: the median
//! and p90 of `--runs` page loads each (default 9; `--runs 0` prints the bytes only).
//!
//! Run it with `just bench-page` (a release build). The server runs in this process; every page
//! load is a new Chromium with a fresh profile, as a participant who joined before (the identity
//! is put in the page's storage before it loads), on an empty board. The loads of both codings
//! alternate, each going first every other time, so drift in the machine's load touches both
//! alike.

use anyhow::{Context, bail, ensure};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use hindsight_tests::TestServer;
use hindsight_tests::browser::Browser;
use hindsight_tests::percentiles;
use serde_json::json;

/// An emulated network, or loopback as it is.
#[derive(Debug, Clone, Copy)]
struct Network {
    name: &'static str,
    /// Latency and throughput (bits per second, both ways), or `None` for loopback.
    throttle: Option<(f64, f64)>,
}

const NETWORKS: [Network; 2] =
    [Network { name: "loopback", throttle: None }, Network { name: "10 Mbit/s, 40 ms", throttle: Some((40.0, 10e6)) }];

/// What the browser offers in `Accept-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offer {
    /// Chromium's own header (`gzip, deflate, br, zstd`).
    Brotli,
    /// `gzip, deflate`, set through the DevTools protocol.
    GzipOnly,
}

/// The bytes of the client's code (the `.wasm`) in each coding, to check what each load received.
#[derive(Debug, Clone, Copy)]
struct WasmBytes {
    brotli: u64,
    gzip: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs = runs()?;
    let server = TestServer::spawn().await;
    let wasm = print_bytes(&server.http_url()).await?;
    if runs > 0 {
        let board = server.create_board("Page load", "went-well").await;
        let me = hindsight_tests::http::join_board(&server.http_url(), board.board_id, "Reader", None).await?;
        let identity = json!({ "participant_id": me.participant_id, "desk_id": me.desk_id.to_string() });
        let script = before_load(&format!("hindsight:identity:{}", board.board_id), &identity.to_string());
        let browser = Browser::launch().await;
        println!(
            "\n#### Time to a rendered board, cold cache (ms from navigation start to `#stage`, {runs} loads each)\n"
        );
        println!("| network | brotli: median | p90 | gzip only: median | p90 |");
        println!("|---|---|---|---|---|");
        // One load of each first, not counted: the first Chromium of a run starts slower.
        for offer in [Offer::Brotli, Offer::GzipOnly] {
            load(&browser, &board.url, &script, NETWORKS[0], offer, wasm).await?;
        }
        for network in NETWORKS {
            let (mut brotli, mut gzip) = (Vec::new(), Vec::new());
            for run in 0..runs {
                let offers = [Offer::Brotli, Offer::GzipOnly];
                for offer in if run % 2 == 0 { offers } else { [offers[1], offers[0]] } {
                    let ms = load(&browser, &board.url, &script, network, offer, wasm).await?;
                    if offer == Offer::Brotli { &mut brotli } else { &mut gzip }.push(ms);
                }
            }
            let ((b50, b90), (g50, g90)) = (percentiles(&mut brotli), percentiles(&mut gzip));
            println!("| {} | {b50:.0} | {b90:.0} | {g50:.0} | {g90:.0} |", network.name);
        }
        browser.quit().await;
    }
    server.shutdown().await;
    Ok(())
}

fn runs() -> anyhow::Result<usize> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(9),
        [flag, n] if flag == "--runs" => n.parse().with_context(|| format!("--runs takes a number, not `{n}`")),
        _ => bail!("usage: hindsight-page-load [--runs N]"),
    }
}

/// Prints the bytes of every file the page loads, as the server sends them in each coding, and
/// returns those of the code.
async fn print_bytes(base: &str) -> anyhow::Result<WasmBytes> {
    println!("#### The client's files as the server sends them (bytes)\n");
    println!("| file | as it is | gzip | brotli | brotli / gzip |");
    println!("|---|---|---|---|---|");
    let mut wasm = None;
    for url in hindsight_tests::http::asset_urls(base).await? {
        let mut sizes = [0; 3];
        for (size, (accept, coding)) in
            sizes.iter_mut().zip([("identity", None), ("gzip", Some("gzip")), ("br", Some("br"))])
        {
            let answer = hindsight_tests::http::get_with(&url, &[("Accept-Encoding", accept)]).await?;
            ensure!(answer.status == 200 && answer.header("content-encoding") == coding, "{url} for {accept}");
            *size = answer.body.len() as u64;
        }
        let [plain, gzip, brotli] = sizes;
        let name = url.rsplit('/').next().unwrap_or_default();
        println!("| {name} | {plain} | {gzip} | {brotli} | {:.2} |", brotli as f64 / gzip as f64);
        if url.ends_with(".wasm") {
            wasm = Some(WasmBytes { brotli, gzip });
        }
    }
    wasm.context("the page loads no .wasm")
}

/// The script that runs in the page before its own: it stores the participant's identity (so the
/// board opens without the join dialog) and notes when `#stage` enters the document.
fn before_load(key: &str, identity: &str) -> String {
    let (key, identity) = (json!(key), json!(identity));
    format!(
        "try {{ localStorage.setItem({key}, {identity}); }} catch (_) {{}}
         new MutationObserver((_, observer) => {{
           if (document.getElementById('stage')) {{
             window.__stageAt = performance.now();
             observer.disconnect();
           }}
         }}).observe(document, {{ childList: true, subtree: true }});"
    )
}

/// One cold page load of the board at `url`: milliseconds from navigation start until `#stage`.
async fn load(
    browser: &Browser,
    url: &str,
    script: &str,
    network: Network,
    offer: Offer,
    wasm: WasmBytes,
) -> anyhow::Result<f64> {
    let page = browser.open("about:blank").await;
    let client = page.client();
    cdp(client, "Network.enable", json!({})).await?;
    if offer == Offer::GzipOnly {
        cdp(client, "Network.setExtraHTTPHeaders", json!({ "headers": { "Accept-Encoding": "gzip, deflate" } }))
            .await?;
    }
    if let Some((latency, bits)) = network.throttle {
        let bytes = bits / 8.0;
        let conditions =
            json!({ "offline": false, "latency": latency, "downloadThroughput": bytes, "uploadThroughput": bytes });
        cdp(client, "Network.emulateNetworkConditions", conditions).await?;
    }
    cdp(client, "Page.addScriptToEvaluateOnNewDocument", json!({ "source": script })).await?;
    client.goto(url).await?;
    page.wait_for(Locator::Css("#stage")).await;
    let seen = client
        .execute(
            "const wasm = performance.getEntriesByType('resource').find((e) => e.name.endsWith('.wasm'));
             return [window.__stageAt ?? null, wasm ? wasm.encodedBodySize : null];",
            vec![],
        )
        .await?;
    let ms = seen[0].as_f64().context("the page did not note when the board showed")?;
    let received = seen[1].as_u64().context("the page did not load the code")?;
    let expected = if offer == Offer::Brotli { wasm.brotli } else { wasm.gzip };
    ensure!(received == expected, "{offer:?} on {}: the code came in {received} bytes, not {expected}", network.name);
    client.clone().close().await?;
    Ok(ms)
}

/// A Chrome DevTools Protocol command, through chromedriver's passthrough.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: serde_json::Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({ "cmd": self.cmd, "params": self.params }).to_string()))
    }
}

async fn cdp(client: &Client, cmd: &'static str, params: serde_json::Value) -> anyhow::Result<()> {
    client.issue_cmd(Cdp { cmd, params }).await.with_context(|| format!("DevTools command {cmd}"))?;
    Ok(())
}
