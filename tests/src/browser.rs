//! [`Browser`]: headless Chromium driven through chromedriver, and [`Page`], one browser window
//! on a Hindsight page with the gestures a participant makes (add, edit, delete a note).
//!
//! Each page gets a session of its own with a fresh profile directory, so pages share nothing
//! but the server. Waits poll the page for a condition, bounded by [`crate::TIMEOUT`].

use std::path::PathBuf;
use std::process::Stdio;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::TIMEOUT;

/// A running chromedriver. Pages opened from it are separate browser sessions.
pub struct Browser {
    driver: Child,
    url: String,
}

/// Where screenshots go: `tests/artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("artifacts")
}

impl Browser {
    /// Starts chromedriver on a free port and waits until it says it is ready.
    pub async fn launch() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let mut driver = Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group, so the browsers it starts go with it (see `Drop`).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver must be installed (`just setup` installs it)");
        let stdout = driver.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("started successfully") {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(matches!(ready, Ok(true)), "chromedriver did not start");
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { driver, url: format!("http://127.0.0.1:{port}") }
    }

    /// Opens `url` in a new headless Chromium with a fresh profile.
    pub async fn open(&self, url: &str) -> Page {
        let profile = tempfile::tempdir().expect("a profile directory");
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,860",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!("a JSON object") };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a chromium session");
        client.goto(url).await.expect("the page loads");
        Page { client, profile }
    }

    /// Opens the board at `url` as its facilitator (with the key), joins as `name`, and waits
    /// until the page says this browser runs the retro.
    pub async fn facilitator(&self, url: &str, key: &str, name: &str) -> Page {
        let page = self.open(&format!("{url}#key={key}")).await;
        page.join(name).await;
        page.wait_for(Locator::Css("#facilitator-badge")).await;
        page
    }

    /// Opens the board at `url` and joins as `name`.
    pub async fn participant(&self, url: &str, name: &str) -> Page {
        let page = self.open(url).await;
        page.join(name).await;
        page
    }

    pub async fn quit(self) {
        drop(self);
    }
}

impl Drop for Browser {
    /// Kills chromedriver and every browser it started — also when a test fails half-way, so no
    /// headless Chromium outlives its test.
    fn drop(&mut self) {
        // Only while chromedriver runs unreaped: then its pid, and so its group id, cannot have
        // been given to another process, and the signal reaches only its group.
        if let (Ok(None), Some(pid)) = (self.driver.try_wait(), self.driver.id()) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// One browser window.
pub struct Page {
    client: Client,
    profile: TempDir,
}

impl Drop for Page {
    /// Kills this page's browser, found by its profile directory, should the session not have
    /// ended it (a failed test never reaches `close`).
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", "--", &format!("--user-data-dir={}", self.profile.path().display())])
            .status();
    }
}

impl Page {
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Waits until an element matching `locator` exists.
    pub async fn wait_for(&self, locator: Locator<'_>) -> Element {
        let described = format!("{locator:?}");
        self.client
            .wait()
            .at_most(TIMEOUT)
            .for_element(locator)
            .await
            .unwrap_or_else(|e| panic!("waited for {described}: {e}"))
    }

    pub async fn click(&self, locator: Locator<'_>) {
        self.wait_for(locator).await.click().await.expect("click");
    }

    /// Waits until the connection indicator is in `state` (`connected`, `reconnecting`, ...).
    pub async fn wait_state(&self, state: &str) {
        self.wait_for(Locator::Css(&format!("#connection[data-state='{state}']"))).await;
    }

    /// Waits until the board is loaded and the connection is live.
    pub async fn wait_connected(&self) {
        self.wait_state("connected").await;
        self.wait_for(Locator::Css("#stage")).await;
    }

    /// Joins the board from the join dialog under `name`, and waits until the board shows.
    pub async fn join(&self, name: &str) {
        self.wait_for(Locator::Css("#join-name")).await.send_keys(name).await.expect("type a name");
        self.click(Locator::Css("#join")).await;
        self.wait_connected().await;
    }

    /// Waits until the board is in `phase` (`write`, `reveal`, ...).
    pub async fn wait_phase(&self, phase: &str) {
        self.wait_for(Locator::Css(&format!("#stage[data-phase='{phase}']"))).await;
    }

    /// The facilitator moves the retro to the next phase, which must be `phase`.
    pub async fn next_phase(&self, phase: &str) {
        self.click(Locator::Css("#next-phase")).await;
        self.wait_phase(phase).await;
    }

    /// The XPath of the card (cluster or lone note) that holds a note reading `text`.
    pub fn item_xpath(text: &str) -> String {
        format!("//article[contains(@class,'item')][.//p[@class='note-text' and normalize-space(.)='{text}']]")
    }

    /// Clicks a button (by class) on the card holding the note reading `text`.
    pub async fn click_on_item(&self, text: &str, button: &str) {
        let xpath = format!("{}//button[contains(@class,'{button}')]", Self::item_xpath(text));
        self.click(Locator::XPath(&xpath)).await;
    }

    /// Groups the note reading `note` with the card holding `onto`, the keyboard way.
    pub async fn group(&self, note: &str, onto: &str) {
        self.click_on_item(note, "group-note").await;
        self.click_on_item(onto, "put-here").await;
        let together = format!(
            "//article[contains(@class,'cluster')][.//p[normalize-space(.)='{note}']][.//p[normalize-space(.)='{onto}']]"
        );
        self.wait_for(Locator::XPath(&together)).await;
    }

    /// Gives the card holding `text` one more dot, and waits until it shows `dots` of ours.
    pub async fn vote(&self, text: &str, dots: u32) {
        self.click_on_item(text, "vote-up").await;
        let xpath = format!("{}//span[@class='my-dots' and @data-dots='{dots}']", Self::item_xpath(text));
        self.wait_for(Locator::XPath(&xpath)).await;
    }

    /// Waits until a person's line in the people panel says `status`.
    pub async fn wait_person_status(&self, name: &str, status: &str) {
        let xpath = format!(
            "//li[contains(@class,'person')][.//span[@class='person-name' and starts-with(normalize-space(.),'{name}')]]//span[@class='person-status' and normalize-space(.)='{status}']"
        );
        self.wait_for(Locator::XPath(&xpath)).await;
    }

    /// Waits until a JavaScript expression is true in the page (polling, bounded by the timeout).
    pub async fn wait_js(&self, expression: &str) {
        let script = format!("return !!({expression});");
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            if self.client.execute(&script, vec![]).await.ok() == Some(serde_json::Value::Bool(true)) {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "waited for `{expression}`");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the field at `field`, puts the caret after `caret` characters, and
    /// marks the field, so that [`Page::assert_typing`] can tell it is the very same element.
    pub async fn start_typing(&self, field: Locator<'_>, text: &str, caret: u32) {
        let described = format!("{field:?}");
        self.wait_for(field).await.send_keys(text).await.expect("type");
        let script = "const e = document.activeElement; e.setSelectionRange(arguments[0], arguments[0]); \
                      e.dataset.typing = 'yes'; return e.value;";
        let value = self.client.execute(script, vec![serde_json::json!(caret)]).await.expect("set the caret");
        assert!(value.as_str().is_some_and(|v| v.ends_with(text)), "typed {text:?} into {described}: {value}");
    }

    /// Asserts that what is being typed is intact: the field marked by [`Page::start_typing`]
    /// still has the focus, holds `text`, and has the caret after `caret` characters.
    pub async fn assert_typing(&self, text: &str, caret: u32) {
        let script = "const e = document.activeElement; \
                      if (!e || e.dataset.typing !== 'yes') { return 'the focus is on ' + (e ? e.outerHTML.slice(0, 200) : 'nothing'); } \
                      return [e.value, e.selectionStart, e.selectionEnd];";
        let state = self.client.execute(script, vec![]).await.expect("read the focused field");
        assert_eq!(state, serde_json::json!([text, caret, caret]), "what was being typed");
    }

    /// Types `text` where the caret is, in the focused field.
    pub async fn keep_typing(&self, text: &str) {
        self.client.active_element().await.expect("a focused field").send_keys(text).await.expect("type");
    }

    /// Drags `from` onto the top (or, `after`, the bottom) edge of `to`, with the events a
    /// browser fires for a drag and drop. (WebDriver's pointer actions cannot drive HTML drag and
    /// drop in Chromium; the page's handlers are the same either way.)
    pub async fn drag(&self, from: &Element, to: &Element, after: bool) {
        let script = "const [s, d, after] = arguments; const dt = new DataTransfer(); \
            s.dispatchEvent(new DragEvent('dragstart', {bubbles: true, dataTransfer: dt})); \
            const r = d.getBoundingClientRect(); const y = after ? r.bottom - 2 : r.top + 2; \
            const at = {bubbles: true, cancelable: true, clientX: r.left + 5, clientY: y, dataTransfer: dt}; \
            d.dispatchEvent(new DragEvent('dragover', at)); d.dispatchEvent(new DragEvent('drop', at)); \
            s.dispatchEvent(new DragEvent('dragend', {bubbles: true, dataTransfer: dt})); return true;";
        let args = vec![
            serde_json::to_value(from).expect("an element"),
            serde_json::to_value(to).expect("an element"),
            serde_json::json!(after),
        ];
        self.client.execute(script, args).await.expect("drag and drop");
    }

    /// The texts of the notes of a column that show (a filter hides the others), in order.
    pub async fn shown_notes(&self, column: &str) -> Vec<String> {
        let script = "return [...document.querySelectorAll(`.column[data-column='${arguments[0]}'] .note-text`)] \
            .filter(e => e.getClientRects().length > 0).map(e => e.textContent.trim());";
        let texts = self.client.execute(script, vec![serde_json::json!(column)]).await.expect("read the notes");
        serde_json::from_value(texts).expect("a list of texts")
    }

    /// Runs a JavaScript expression in the page and returns its value.
    pub async fn eval(&self, expression: &str) -> serde_json::Value {
        self.client.execute(&format!("return {expression};"), vec![]).await.expect("evaluate")
    }

    /// Resizes the window (the page's layout follows).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client.set_window_size(width, height).await.expect("resize the window");
    }

    /// Runs axe-core (installed by `scripts/setup-axe.sh`) on the page as it is now, and returns
    /// its serious and critical violations, one line each: rule, impact, what to fix, where.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("axe/node_modules/axe-core/axe.min.js");
        let axe = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("axe-core must be installed (`just setup`): {}: {e}", path.display()));
        if self.client.execute("return typeof window.axe === 'undefined';", vec![]).await.expect("look for axe")
            == serde_json::Value::Bool(true)
        {
            self.client.execute(&axe, vec![]).await.expect("load axe-core");
        }
        let script = "const done = arguments[arguments.length - 1]; \
            axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations \
              .filter(v => v.impact === 'serious' || v.impact === 'critical') \
              .map(v => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.length} node(s), e.g. ${JSON.stringify(v.nodes[0].target)}: ${v.nodes[0].failureSummary}`)), \
              e => done([`axe failed: ${e}`]));";
        let found = self.client.execute_async(script, vec![]).await.expect("run axe-core");
        serde_json::from_value(found).expect("a list of violations")
    }

    /// Reloads the page.
    pub async fn reload(&self) {
        self.client.refresh().await.expect("reload");
    }

    /// The page's HTML as it is now.
    pub async fn html(&self) -> String {
        self.client.source().await.expect("page source")
    }

    fn note_xpath(column: &str, text: &str) -> String {
        format!(
            "//section[@data-column='{column}']//article[contains(@class,'note')][.//p[@class='note-text' and normalize-space(.)='{text}']]"
        )
    }

    /// Types a note into a column's composer and adds it.
    pub async fn add_note(&self, column: &str, text: &str) {
        let composer = format!(".column[data-column='{column}'] textarea.new-note");
        self.wait_for(Locator::Css(&composer)).await.send_keys(text).await.expect("type the note");
        self.click(Locator::Css(&format!(".column[data-column='{column}'] .add-note"))).await;
    }

    /// Waits until a note with exactly `text` shows in `column`.
    pub async fn wait_for_note(&self, column: &str, text: &str) -> Element {
        self.wait_for(Locator::XPath(&Self::note_xpath(column, text))).await
    }

    /// Waits until the column's counter shows `count`.
    pub async fn wait_for_count(&self, column: &str, count: usize) {
        let xpath =
            format!("//section[@data-column='{column}']//span[@class='count' and normalize-space(.)='{count}']");
        self.wait_for(Locator::XPath(&xpath)).await;
    }

    /// The texts of the notes in a column, in display order.
    pub async fn notes(&self, column: &str) -> Vec<String> {
        let css = format!(".column[data-column='{column}'] .note-text");
        let mut texts = Vec::new();
        for element in self.client.find_all(Locator::Css(&css)).await.expect("find notes") {
            texts.push(element.text().await.expect("note text"));
        }
        texts
    }

    /// Replaces the text of the note that reads `old`.
    pub async fn edit_note(&self, column: &str, old: &str, new: &str) {
        let note = self.wait_for_note(column, old).await;
        note.find(Locator::Css(".edit-note")).await.expect("edit button").click().await.expect("click edit");
        let editor = note.find(Locator::Css("textarea.note-editor")).await.expect("the editor opens");
        editor.clear().await.expect("clear the editor");
        editor.send_keys(new).await.expect("type the new text");
        note.find(Locator::Css(".save-note")).await.expect("save button").click().await.expect("click save");
        self.wait_for_note(column, new).await;
    }

    /// Deletes the note that reads `text`.
    pub async fn delete_note(&self, column: &str, text: &str) {
        let note = self.wait_for_note(column, text).await;
        note.find(Locator::Css(".delete-note")).await.expect("delete button").click().await.expect("click delete");
    }

    /// Saves a PNG of the window to `tests/artifacts/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("create tests/artifacts");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write the screenshot");
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}
