//! The board page: joining, then the retro itself — the top bar, the phase bar with the shared
//! timer, the people panel, and the view of the current phase.
//!
//! - [`write`]: Write and Reveal: private drafts and revealed notes, by column.
//! - [`items`]: Group, Vote and Discuss: clusters and lone notes as cards.
//! - [`actions`]: action items with owners and due dates.
//! - [`summary`]: Done: the read-only summary.
//! - [`people`]: who is here, writing, voting, ready.
//! - [`phase_bar`]: the phases, the facilitator's controls, the timer.
//! - [`lanes`]: the columns side by side, or one at a time on a phone.
//! - [`arrange`]: dragging and sorting cards for everyone, and finding a note.
//! - [`shared_input`]: a field bound to a shared text (a cluster's name).
//!
//! Invariant: a remote change never takes what someone is typing: views read the board through
//! memos of their part, lists are keyed by id, and `keeping_focus` wraps every update of the board
//! and desk signals.

mod actions;
mod arrange;
mod factors;
mod incident;
mod items;
mod lanes;
mod people;
mod phase_bar;
mod review;
mod shared_input;

pub use review::carried_label;
mod summary;
mod timeline;
mod write;

use std::collections::BTreeMap;

use hindsight_shared::ids::DocumentId;
use hindsight_shared::postmortem::Layout;
use hindsight_shared::schema::{ActionItem, Board, Desk, Draft, MAX_NAME_CHARS, Phase, SchemaError};
use hindsight_shared::templates;
use hindsight_shared::text::{self, Span};
use hindsight_shared::{edit, export};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Identity, JoinError};
use crate::session::{BoardSession, BoardView, Status};
use crate::ui::{Brand, FormError};

/// What every part of the board page shares, through Leptos context.
#[derive(Clone, Copy)]
pub struct Ctx {
    pub session: StoredValue<BoardSession, LocalStorage>,
    pub view: BoardView,
    /// This browser's participant id.
    pub me: StoredValue<String>,
    pub desk_id: DocumentId,
    /// This browser's clock, ticking every second, for timers.
    pub now: RwSignal<i64>,
    /// The board's phase. A memo, like every part of the board a view reads: it notifies only
    /// when the phase itself changes, so a remote edit elsewhere rebuilds nothing that reads it.
    pub phase: Memo<Phase>,
    /// This browser holds the facilitator role.
    pub facilitating: Memo<bool>,
    /// The connection to the server is up.
    pub connected: Memo<bool>,
    /// This person's filter: only notes containing it show (nobody else sees it).
    pub filter: RwSignal<String>,
    /// What the screen-reader live region says last.
    pub announcement: RwSignal<String>,
    /// What the last delete took, while it can still be undone.
    pub undo: RwSignal<Option<Undo>>,
}

/// Something deleted that can be put back.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo {
    Note(Draft),
    Action(ActionItem),
}

impl Ctx {
    pub fn get() -> Self {
        expect_context::<Ctx>()
    }

    /// Reads the board (tracked). `None` until it arrives.
    pub fn with_board<T>(&self, f: impl FnOnce(&Board) -> T) -> Option<T> {
        self.view.board.with(|b| b.as_ref().map(f))
    }

    /// One part of the board, as a memo: what reads it is notified only when that part changes.
    /// Every view reads the board through memos like this one, never the whole board signal.
    pub fn part<T>(&self, read: impl Fn(&Board) -> T + Send + Sync + 'static) -> Memo<T>
    where
        T: Default + PartialEq + Send + Sync + 'static,
    {
        let board = self.view.board;
        Memo::new(move |_| board.with(|b| b.as_ref().map(&read)).unwrap_or_default())
    }

    /// One part of this participant's desk, as a memo.
    pub fn desk_part<T>(&self, read: impl Fn(&Desk) -> T + Send + Sync + 'static) -> Memo<T>
    where
        T: PartialEq + Send + Sync + 'static,
    {
        let desk = self.view.desk;
        Memo::new(move |_| desk.with(&read))
    }

    pub fn phase(&self) -> Phase {
        self.phase.get()
    }

    pub fn is_facilitator(&self) -> bool {
        self.facilitating.get()
    }

    /// The server's idea of now (tracked), to read timers set in server time.
    pub fn server_now(&self) -> i64 {
        self.now.get() + self.view.clock_offset.get()
    }

    /// Changes the board, showing why if the change is invalid.
    pub fn edit_board(
        &self,
        edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), SchemaError>,
    ) {
        let result = self.session.with_value(|s| s.change_board(edit));
        self.report(result);
    }

    /// Changes this participant's desk, showing why if the change is invalid.
    pub fn edit_desk(
        &self,
        edit: impl FnOnce(&mut automerge::transaction::Transaction<'_>) -> Result<(), SchemaError>,
    ) {
        let result = self.session.with_value(|s| s.change_desk(edit));
        self.report(result);
    }

    /// Says `text` to screen readers (the live region), without moving the focus.
    pub fn announce(&self, text: &str) {
        self.announcement.set(text.to_owned());
    }

    /// Offers to undo a delete for a few seconds.
    pub fn offer_undo(&self, what: Undo) {
        self.undo.set(Some(what.clone()));
        let undo = self.undo;
        set_timeout(
            move || {
                if undo.with_untracked(|u| u.as_ref() == Some(&what)) {
                    undo.set(None);
                }
            },
            std::time::Duration::from_secs(10),
        );
    }

    fn report(&self, result: Result<(), SchemaError>) {
        if let Err(e) = result {
            self.view.refusal.set(Some(e.to_string()));
        }
    }
}

/// A list whose rows are found by id: the order as one memo, and each row as a memo of its own.
/// A `<For>` keyed by id over [`Keyed::order`] builds a row once and then updates it in place
/// when its own data changes: a remote edit to one row touches only that row's DOM, and never an
/// input, a focus or an open editor elsewhere.
pub struct Keyed<T: Send + Sync + 'static> {
    pub order: Memo<Vec<String>>,
    rows: Memo<BTreeMap<String, T>>,
}

impl<T: Send + Sync + 'static> Clone for Keyed<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for Keyed<T> {}

impl<T: Clone + PartialEq + Send + Sync + 'static> Keyed<T> {
    /// `read` gives the rows in display order, each with its id.
    pub fn new(read: impl Fn() -> Vec<(String, T)> + Send + Sync + 'static) -> Self {
        let all = Memo::new(move |_| read());
        let order = Memo::new(move |_| all.with(|rows| rows.iter().map(|(id, _)| id.clone()).collect()));
        let rows = Memo::new(move |_| all.get().into_iter().collect());
        Self { order, rows }
    }

    /// The row with id `id`: `None` once it is gone (while its view is being taken down).
    pub fn row(&self, id: String) -> Memo<Option<T>> {
        let rows = self.rows;
        Memo::new(move |_| rows.with(|rows| rows.get(&id).cloned()))
    }

    pub fn count(&self) -> usize {
        self.order.with(Vec::len)
    }
}

/// Makes a popup (a menu, a small panel) close the way people expect: on a click or tap outside
/// `root` (the popup with its button), and on Escape (see [`closes_on_escape`]). Returns the
/// keydown handler to put on `root`.
pub fn popup(
    open: RwSignal<bool>,
    root: NodeRef<leptos::html::Div>,
    button: NodeRef<leptos::html::Button>,
) -> impl Fn(web_sys::KeyboardEvent) + Copy + 'static {
    let outside = window_event_listener(leptos::ev::pointerdown, move |ev| {
        if !open.get_untracked() {
            return;
        }
        let target = ev.target().and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Node>(t).ok());
        let inside = root.get_untracked().zip(target).is_some_and(|(root, target)| root.contains(Some(&target)));
        if !inside {
            open.set(false);
        }
    });
    on_cleanup(move || outside.remove());
    closes_on_escape(open, button)
}

/// The keydown handler of a disclosure (a panel one works in, like the settings): Escape closes
/// it and gives the focus back to its `button`. Nothing else closes it but the button.
pub fn closes_on_escape(
    open: RwSignal<bool>,
    button: NodeRef<leptos::html::Button>,
) -> impl Fn(web_sys::KeyboardEvent) + Copy + 'static {
    move |ev: web_sys::KeyboardEvent| {
        if ev.key() == "Escape" && open.get_untracked() {
            ev.prevent_default();
            open.set(false);
            if let Some(button) = button.get_untracked() {
                let _ = button.focus();
            }
        }
    }
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// The facilitator key this browser holds for a board, and whether it just came in the page's
/// address (the facilitator link), which asks for the role. A key from the address is kept in
/// storage only once the server took it (a join or a claim with it succeeded): a crafted link
/// with a wrong key cannot replace the key a facilitator holds.
#[derive(Clone, Copy)]
struct KeyHold {
    board: DocumentId,
    key: RwSignal<Option<String>>,
    from_link: RwSignal<bool>,
}

impl KeyHold {
    /// Reads the key from the address or from storage, and follows the address: opening the
    /// facilitator link in a tab already on the board changes only the fragment.
    fn new(board: DocumentId) -> Self {
        let hold = Self { board, key: RwSignal::new(hold_stored(board)), from_link: RwSignal::new(false) };
        hold.take_from_address();
        let _ = window_event_listener(leptos::ev::hashchange, move |_| hold.take_from_address());
        hold
    }

    /// Takes the key out of the URL fragment (`#key=...`), so the address bar shows the plain
    /// link to share.
    fn take_from_address(self) {
        let location = window().location();
        let Some(key) = location.hash().ok().and_then(|h| h.strip_prefix("#key=").map(str::to_owned)) else {
            return;
        };
        if let Ok(history) = window().history() {
            let path = location.pathname().unwrap_or_default();
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
        }
        self.key.set(Some(key));
        self.from_link.set(true);
    }

    /// The server took the key: keep it.
    fn proven(self) {
        if let (Some(storage), Some(key)) = (storage(), self.key.get_untracked()) {
            let _ = storage.set_item(&key_storage(self.board), &key);
        }
    }

    /// The server refused the key: go back to the one this browser kept, if any.
    fn refused(self) {
        self.key.set(hold_stored(self.board));
    }
}

fn key_storage(board: DocumentId) -> String {
    format!("hindsight:facilitator:{board}")
}

fn hold_stored(board: DocumentId) -> Option<String> {
    storage().and_then(|s| s.get_item(&key_storage(board)).ok().flatten())
}

fn identity_key(board: DocumentId) -> String {
    format!("hindsight:identity:{board}")
}

fn stored_identity(board: DocumentId) -> Option<Identity> {
    let text = storage()?.get_item(&identity_key(board)).ok().flatten()?;
    serde_json::from_str(&text).ok()
}

fn store_identity(board: DocumentId, identity: &Identity) {
    if let (Some(storage), Ok(text)) = (storage(), serde_json::to_string(identity)) {
        let _ = storage.set_item(&identity_key(board), &text);
    }
}

#[component]
pub fn BoardPage(id: DocumentId) -> impl IntoView {
    let hold = KeyHold::new(id);
    let identity = RwSignal::new(stored_identity(id));
    let missing = RwSignal::new(false);
    view! {
        <div class="page board-page">
            {move || match (identity.get(), missing.get()) {
                (_, true) => view! { <NotFound /> }.into_any(),
                (Some(identity), _) => match identity.desk_id.parse::<DocumentId>() {
                    Ok(desk) => {
                        view! { <Retro id desk me=identity.participant_id hold /> }.into_any()
                    }
                    Err(_) => view! { <NotFound /> }.into_any(),
                },
                (None, _) => view! { <JoinDialog id hold identity missing /> }.into_any(),
            }}
        </div>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <header class="topbar">
            <Brand />
        </header>
        <main id="not-found" class="message">
            <h1>"This board does not exist"</h1>
            <p>"Check the link, or start a new board."</p>
            <a class="primary" href="/">
                "New board"
            </a>
        </main>
    }
}

/// Asks for a display name, then joins the board.
#[component]
fn JoinDialog(
    id: DocumentId,
    hold: KeyHold,
    identity: RwSignal<Option<Identity>>,
    missing: RwSignal<bool>,
) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let key = hold.key.get_untracked();
    let as_facilitator = key.is_some();
    let join = move || {
        busy.set(true);
        let chosen = name.get_untracked().trim().to_owned();
        let key = key.clone();
        spawn_local(async move {
            match api::join_board(&id.to_string(), &chosen, key.as_deref()).await {
                Ok(joined) => {
                    // Joining with the key made this browser the facilitator already.
                    hold.from_link.set(false);
                    if as_facilitator {
                        hold.proven();
                    }
                    store_identity(id, &joined);
                    identity.set(Some(joined));
                }
                Err(JoinError::NoBoard) => missing.set(true),
                Err(JoinError::Other(message)) => {
                    error.set(Some(message));
                    busy.set(false);
                }
            }
        });
    };
    let join_on_submit = join.clone();
    view! {
        <header class="topbar">
            <Brand />
        </header>
        <main class="message">
            <form
                class="join-card"
                on:submit=move |ev| {
                    ev.prevent_default();
                    join_on_submit();
                }
            >
                <h1>{if as_facilitator { "Join as the facilitator" } else { "Join the retro" }}</h1>
                <p>"Pick a name others will see next to your presence. Your notes stay anonymous."</p>
                <input
                    id="join-name"
                    type="text"
                    placeholder="Your name (optional)"
                    maxlength=MAX_NAME_CHARS
                    autocomplete="nickname"
                    autofocus
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
                <FormError error />
                <button id="join" type="submit" class="primary" disabled=move || busy.get()>
                    {move || if busy.get() { "Joining…" } else { "Join board" }}
                </button>
            </form>
        </main>
    }
}

/// The retro, once joined.
#[component]
fn Retro(id: DocumentId, desk: DocumentId, me: String, hold: KeyHold) -> impl IntoView {
    let session = BoardSession::start(id, desk);
    let view = session.view;
    let now = RwSignal::new(js_sys::Date::now() as i64);
    let ticker =
        set_interval_with_handle(move || now.set(js_sys::Date::now() as i64), std::time::Duration::from_secs(1));
    on_cleanup(move || {
        if let Ok(handle) = ticker {
            handle.clear();
        }
    });
    let board = view.board;
    let phase = Memo::new(move |_| board.with(|b| b.as_ref().map(|b| b.phase).unwrap_or_default()));
    let facilitating = {
        let me = me.clone();
        Memo::new(move |_| board.with(|b| b.as_ref().is_some_and(|b| b.facilitates(&me))))
    };
    let ctx = Ctx {
        session: StoredValue::new_local(session),
        view,
        me: StoredValue::new(me),
        desk_id: desk,
        now,
        phase,
        facilitating,
        connected: Memo::new(move |_| view.status.get() == Status::Connected),
        filter: RwSignal::new(String::new()),
        announcement: RwSignal::new(String::new()),
        undo: RwSignal::new(None),
    };
    provide_context(ctx);
    provide_context(hold);

    let title = ctx.part(|b| b.title.clone());
    Effect::new(move |_| {
        let t = title.get();
        if !t.is_empty() {
            document().set_title(&format!("{t} · Hindsight"));
            // The home page lists the boards opened here, with what they last showed.
            crate::recent::remember(&id.to_string(), &t, phase.get());
        }
    });
    let template_name = ctx.part(|b| templates::find(&b.template).map(|t| t.name).unwrap_or_default());
    let loaded = Memo::new(move |_| board.with(Option::is_some));
    let copied = RwSignal::new(false);
    let copy_link = move |_| {
        let link = window().location().href().unwrap_or_default();
        let _ = window().navigator().clipboard().write_text(&link);
        copied.set(true);
        set_timeout(move || copied.set(false), std::time::Duration::from_secs(2));
    };

    view! {
        <header class="topbar">
            <Brand />
            <div class="board-heading">
                <h1 id="board-title">{title}</h1>
                <span class="template-label">{template_name}</span>
            </div>
            <div class="topbar-actions">
                <Show when=move || ctx.is_facilitator()>
                    <span class="badge" id="facilitator-badge" title="You run this retro">
                        "Facilitator"
                    </span>
                </Show>
                <FacilitatorKey board=id hold />
                <ConnectionIndicator status=view.status pending=view.pending stored=view.stored />
                <ExportMenu board=id />
                <button id="share" class="secondary" on:click=copy_link>
                    {move || if copied.get() { "Link copied" } else { "Copy link" }}
                </button>
            </div>
        </header>
        {move || {
            if view.unavailable.get() {
                view! { <NotFound /> }.into_any()
            } else if !loaded.get() {
                view! {
                    <main class="message loading">
                        <p>"Loading the board…"</p>
                    </main>
                }
                    .into_any()
            } else {
                view! { <Stage /> }.into_any()
            }
        }}
        <LostNotes />
        <UndoBar />
        <Toast />
        <div class="sr-only" id="announcer" role="status" aria-live="polite">
            {move || ctx.announcement.get()}
        </div>
    }
}

/// What a browser holding the facilitator key offers: the link with the key, to keep (it runs
/// the retro from any device), and taking the role (back) when someone else holds it. Opening
/// the facilitator link on a device that already joined takes the role at once.
#[component]
fn FacilitatorKey(board: DocumentId, hold: KeyHold) -> impl IntoView {
    let ctx = Ctx::get();
    let open = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let copied = RwSignal::new(false);
    let link = move || {
        hold.key.get().map(|key| {
            let origin = window().location().origin().unwrap_or_default();
            format!("{origin}{}#key={key}", hindsight_shared::api::board_page(board))
        })
    };
    let copy = move |_| {
        if let Some(link) = link() {
            let _ = window().navigator().clipboard().write_text(&link);
            copied.set(true);
        }
    };
    let take = move || {
        let Some(key) = hold.key.get_untracked() else { return };
        busy.set(true);
        let me = ctx.me.get_value();
        let desk = ctx.desk_id.to_string();
        spawn_local(async move {
            match api::claim_facilitator(&board.to_string(), &me, &desk, &key).await {
                Ok(()) => hold.proven(),
                Err(message) => {
                    hold.refused();
                    ctx.view.refusal.set(Some(message));
                }
            }
            busy.set(false);
        });
    };
    let (root, button) = (NodeRef::new(), NodeRef::new());
    let on_key = popup(open, root, button);
    Effect::new(move |_| {
        if hold.from_link.get() && ctx.connected.get() {
            hold.from_link.set(false);
            if !ctx.facilitating.get_untracked() {
                take();
            }
        }
    });
    view! {
        <Show when=move || ctx.is_facilitator() && hold.key.with(Option::is_some)>
            <div class="key-menu" node_ref=root on:keydown=on_key>
                <button
                    id="facilitator-link"
                    node_ref=button
                    class="secondary"
                    aria-expanded=move || open.get().to_string()
                    aria-controls="facilitator-link-panel"
                    on:click=move |_| open.update(|o| *o = !*o)
                >
                    "Facilitator link"
                </button>
                <Show when=move || open.get()>
                    <div class="key-panel" id="facilitator-link-panel" role="dialog" aria-label="Facilitator link">
                        <p>
                            "Keep this link to run this retro from any device. "
                            <strong>"Anyone who has it can run the retro."</strong>
                        </p>
                        <input id="facilitator-link-text" type="text" readonly prop:value=link aria-label="Facilitator link" />
                        <button class="primary" on:click=copy>
                            {move || if copied.get() { "Copied" } else { "Copy" }}
                        </button>
                    </div>
                </Show>
            </div>
        </Show>
        <Show when=move || !ctx.is_facilitator() && ctx.connected.get() && hold.key.with(Option::is_some)>
            <button id="take-role" class="secondary" disabled=move || busy.get() on:click=move |_| take()>
                "Take the facilitator role"
            </button>
        </Show>
    }
}

/// Notes the server could not take (written offline, arriving after writing closed): their text
/// stays here, to copy elsewhere, until dismissed.
#[component]
fn LostNotes() -> impl IntoView {
    let lost = Ctx::get().view.lost_notes;
    view! {
        <Show when=move || lost.with(|l| !l.is_empty())>
            <aside class="lost-notes" id="lost-notes" role="alert">
                <strong>"These notes arrived too late to be added:"</strong>
                <ul>
                    <For each=move || lost.get() key=|text| text.clone() children=|text| view! { <li>{text}</li> } />
                </ul>
                <button class="secondary" on:click=move |_| lost.set(Vec::new())>
                    "Dismiss"
                </button>
            </aside>
        </Show>
    }
}

/// The phase bar, the current phase's view and the people panel. A phase change is said to
/// screen readers; the focus, if the change took it, goes to the phase's view (see
/// [`crate::focus`]).
#[component]
fn Stage() -> impl IntoView {
    let ctx = Ctx::get();
    let phase = move || ctx.phase();
    Effect::new(move |previous: Option<Phase>| {
        let now = phase();
        if previous.is_some_and(|p| p != now) {
            ctx.announce(&format!("Now: {}. {}", now.title(), phase_bar::hint(now)));
        }
        now
    });
    // The phase's view is built again only when the view itself changes: from Write to Reveal
    // (one view), an open editor stays open.
    #[derive(Clone, Copy, PartialEq)]
    enum View {
        Review,
        Columns,
        Items,
        Actions,
        Summary,
    }
    let shown = Memo::new(move |_| match phase() {
        Phase::Review => View::Review,
        Phase::Write | Phase::Reveal => View::Columns,
        Phase::Group | Phase::Vote | Phase::Discuss => View::Items,
        Phase::Actions => View::Actions,
        Phase::Done => View::Summary,
    });
    let incident_on = ctx.part(|b| b.incident.on);
    view! {
        <phase_bar::PhaseBar />
        <Show when=move || incident_on.get()>
            <incident::IncidentFacts />
            <timeline::Timeline />
            <Show when=move || { phase() >= Phase::Group }>
                <factors::Factors />
            </Show>
        </Show>
        <div class="stage" id="stage" data-phase=move || phase().as_str()>
            <main class="stage-main" id="stage-main" tabindex="-1" aria-label=move || format!("{} phase", phase().title())>
                {move || match shown.get() {
                    View::Review => view! { <review::Review /> }.into_any(),
                    View::Columns => view! { <write::Columns /> }.into_any(),
                    View::Items => view! { <items::Items /> }.into_any(),
                    View::Actions => view! { <actions::ActionsPhase /> }.into_any(),
                    View::Summary => view! { <summary::Summary /> }.into_any(),
                }}
            </main>
            <people::People />
        </div>
    }
}

/// A note's text, with its web addresses as links (opened in a new tab, with no referrer).
#[component]
pub fn NoteText(text: Signal<String>) -> impl IntoView {
    view! {
        <p class="note-text">
            {move || {
                text.with(|t| {
                    text::spans(t)
                        .into_iter()
                        .map(|span| match span {
                            Span::Text(t) => t.to_owned().into_any(),
                            Span::Link(url) => {
                                view! {
                                    <a href=url.to_owned() target="_blank" rel="noopener noreferrer nofollow">
                                        {url.to_owned()}
                                    </a>
                                }
                                    .into_any()
                            }
                        })
                        .collect_view()
                })
            }}
        </p>
    }
}

/// "Deleted — Undo", for a few seconds after a delete.
#[component]
fn UndoBar() -> impl IntoView {
    let ctx = Ctx::get();
    let undo = ctx.undo;
    let what = move || match undo.get() {
        Some(Undo::Note(_)) => "Note deleted.",
        Some(Undo::Action(_)) => "Action item deleted.",
        None => "",
    };
    let restore = move |_| {
        match undo.get_untracked() {
            Some(Undo::Note(draft)) => ctx.edit_desk(|tx| edit::add_draft(tx, &draft)),
            Some(Undo::Action(item)) => ctx.edit_board(|tx| edit::put_action(tx, &item)),
            None => {}
        }
        undo.set(None);
    };
    view! {
        <Show when=move || undo.with(Option::is_some)>
            <div class="undo-bar" id="undo-bar" role="status">
                {what}
                <button id="undo" class="secondary" on:click=restore>
                    "Undo"
                </button>
            </div>
        </Show>
    }
}

/// Connected, reconnecting or offline, and how many local changes wait to sync.
#[component]
pub fn ConnectionIndicator(
    status: RwSignal<Status>,
    pending: RwSignal<usize>,
    stored: RwSignal<bool>,
) -> impl IntoView {
    let waiting = move || match pending.get() {
        0 => String::new(),
        n => format!(" · {} waiting", text::count(n as i64, "change", "changes")),
    };
    let label = move || match (status.get(), pending.get()) {
        (Status::Connecting, _) => "Connecting…".to_owned(),
        (Status::Connected, 0) => "Live".to_owned(),
        (Status::Connected, _) => "Saving…".to_owned(),
        (Status::Reconnecting, _) => format!("Reconnecting…{}", waiting()),
        (Status::Offline, 0) => "Offline — edits are kept".to_owned(),
        (Status::Offline, _) => format!("Offline{}", waiting()),
    };
    view! {
        <span
            id="connection"
            class="connection"
            data-state=move || status.get().as_str()
            data-pending=move || pending.get().to_string()
            data-unsynced=move || (pending.get() > 0).to_string()
            data-stored=move || stored.get().to_string()
            role="status"
        >
            <span class="dot"></span>
            {label}
        </span>
    }
}

/// Saves the board as Markdown, CSV or JSON — rendered here from the local copy, so it works
/// offline too — or opens the printable summary. A menu button: the arrow keys move through the
/// items, Escape closes it and gives the focus back to the button.
#[component]
fn ExportMenu(board: DocumentId) -> impl IntoView {
    let ctx = Ctx::get();
    let open = RwSignal::new(false);
    let button = NodeRef::<leptos::html::Button>::new();
    let menu = NodeRef::<leptos::html::Div>::new();
    let close = move || {
        open.set(false);
        if let Some(button) = button.get_untracked() {
            let _ = button.focus();
        }
    };
    let save = move |format: export::Format, layout: Layout| {
        if let Some(board) = ctx.view.board.get_untracked() {
            let text = export::render_as(&board, format, layout);
            download(&export::file_name(&board, format), format.content_type(), &text);
        }
        close();
    };
    // A postmortem's document comes in two layouts; a retro's export has one.
    let postmortem = Memo::new(move |_| ctx.view.board.with(|b| b.as_ref().is_some_and(|b| b.incident.on)));
    // The items of the open menu, and the one with the focus.
    let items = move || -> Vec<web_sys::HtmlElement> {
        let Some(menu) = menu.get_untracked() else { return Vec::new() };
        let Ok(list) = menu.query_selector_all("[role=menuitem]") else { return Vec::new() };
        (0..list.length())
            .filter_map(|i| list.item(i))
            .filter_map(|n| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(n).ok())
            .collect()
    };
    let focus_item = move |pick: &dyn Fn(Option<usize>, usize) -> usize| {
        let items = items();
        if items.is_empty() {
            return;
        }
        let active = document().active_element();
        let at = items.iter().position(|i| active.as_ref().is_some_and(|a| a == i.as_ref() as &web_sys::Element));
        let _ = items[pick(at, items.len())].focus();
    };
    let root = NodeRef::<leptos::html::Div>::new();
    let dismiss = popup(open, root, button);
    let on_key = move |ev: web_sys::KeyboardEvent| match ev.key().as_str() {
        "Escape" => dismiss(ev),
        "ArrowDown" => {
            ev.prevent_default();
            open.set(true);
            request_animation_frame(move || focus_item(&|at, n| at.map_or(0, |i| (i + 1) % n)));
        }
        "ArrowUp" => {
            ev.prevent_default();
            open.set(true);
            request_animation_frame(move || focus_item(&|at, n| at.map_or(n - 1, |i| (i + n - 1) % n)));
        }
        _ => {}
    };
    view! {
        <div class="export" node_ref=root on:keydown=on_key>
            <button
                id="export"
                class="secondary"
                node_ref=button
                aria-haspopup="menu"
                aria-expanded=move || open.get().to_string()
                on:click=move |_| open.update(|o| *o = !*o)
            >
                "Export"
            </button>
            <Show when=move || open.get()>
                <div class="menu" role="menu" aria-label="Export" node_ref=menu>
                    <button role="menuitem" class="export-md" on:click=move |_| save(export::Format::Markdown, Layout::Sre)>
                        {move || if postmortem.get() { "Markdown (SRE sections)" } else { "Markdown" }}
                    </button>
                    <Show when=move || postmortem.get()>
                        <button role="menuitem" class="export-md-cmr" on:click=move |_| save(export::Format::Markdown, Layout::Cmr)>
                            "Markdown (contributors, mitigators, risks)"
                        </button>
                    </Show>
                    <button role="menuitem" class="export-csv" on:click=move |_| save(export::Format::Csv, Layout::Sre)>"CSV (notes)"</button>
                    <button role="menuitem" class="export-json" on:click=move |_| save(export::Format::Json, Layout::Sre)>"JSON"</button>
                    <a role="menuitem" class="export-print" target="_blank" rel="noopener" href=hindsight_shared::api::export(board, "html")>
                        {move || if postmortem.get() { "Printable postmortem (SRE sections)" } else { "Printable summary" }}
                    </a>
                    <Show when=move || postmortem.get()>
                        <a
                            role="menuitem"
                            class="export-print-cmr"
                            target="_blank"
                            rel="noopener"
                            href=hindsight_shared::api::export_postmortem(board, "html", Layout::Cmr.key())
                        >
                            "Printable postmortem (contributors, mitigators, risks)"
                        </a>
                    </Show>
                </div>
            </Show>
        </div>
    }
}

/// Offers `text` to the user as a file download.
fn download(name: &str, content_type: &str, text: &str) {
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(content_type);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else { return };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else { return };
    if let Ok(link) = document().create_element("a") {
        let _ = link.set_attribute("href", &url);
        let _ = link.set_attribute("download", name);
        if let Some(link) = wasm_bindgen::JsCast::dyn_ref::<web_sys::HtmlElement>(&link) {
            link.click();
        }
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

/// Says why the server (or the rules) refused an edit, for a few seconds.
#[component]
fn Toast() -> impl IntoView {
    let ctx = Ctx::get();
    let refusal = ctx.view.refusal;
    // Each message shows for its own five seconds: an older one's timer does not cut a newer
    // one short.
    let shown = StoredValue::new(0_u64);
    Effect::new(move |_| {
        if refusal.get().is_some() {
            shown.update_value(|n| *n += 1);
            let this = shown.get_value();
            set_timeout(
                move || {
                    if shown.try_get_value() == Some(this) {
                        refusal.set(None);
                    }
                },
                std::time::Duration::from_secs(5),
            );
        }
    });
    view! {
        <Show when=move || refusal.get().is_some()>
            <div class="toast" id="refusal" role="alert">
                <strong>"Not applied: "</strong>
                {move || refusal.get()}
                <button class="icon" aria-label="Dismiss" on:click=move |_| refusal.set(None)>
                    "✕"
                </button>
            </div>
        </Show>
    }
}

/// Milliseconds as `m:ss`.
pub fn clock(ms: i64) -> String {
    let seconds = (ms.max(0) + 999) / 1000;
    format!("{}:{:02}", seconds / 60, seconds % 60)
}
