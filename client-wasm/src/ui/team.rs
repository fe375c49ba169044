//! The team page: the team's memory across its retros. Every action item its retros agreed on,
//! with owner, due date, status, age and how often it was carried, filtered and changed here
//! (offline too: the ledger is synced like a board); charts of each retro's ROTI, follow-through,
//! writers and notes; the causes that came back; exports; and "new retro".

use hindsight_shared::api;
use hindsight_shared::ids::DocumentId;
use hindsight_shared::ledger::{self, Ledger, LedgerAction, MAX_REASON_CHARS, MAX_TEAM_NAME_CHARS, Status};
use hindsight_shared::schema::MAX_TITLE_CHARS;
use hindsight_shared::templates::TEMPLATES;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::session::BoardSession;
use crate::ui::board::ConnectionIndicator;
use crate::ui::chart::{BarChart, Series};
use crate::ui::{Brand, FormError, open_made};
use crate::{api as client_api, recent};

/// Which actions the list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    All,
    Open,
    Overdue,
    Done,
}

impl Filter {
    const ALL: [Filter; 4] = [Filter::All, Filter::Open, Filter::Overdue, Filter::Done];

    fn title(self) -> &'static str {
        match self {
            Filter::All => "All",
            Filter::Open => "Open",
            Filter::Overdue => "Overdue",
            Filter::Done => "Done",
        }
    }

    fn keeps(self, action: &LedgerAction, today: &str) -> bool {
        match self {
            Filter::All => true,
            Filter::Open => action.status.is_open(),
            Filter::Overdue => action.is_overdue(today),
            Filter::Done => action.status == Status::Done,
        }
    }
}

/// Today, as an ISO date, by this browser's clock.
fn today() -> String {
    ledger::iso_day(js_sys::Date::now() as i64)
}

fn key_storage(team: DocumentId) -> String {
    format!("hindsight:team-key:{team}")
}

fn storage() -> Option<web_sys::Storage> {
    window().local_storage().ok().flatten()
}

/// The team key: from the link's fragment (then kept in this browser, and taken out of the
/// address bar so the plain link is what gets shared), or as kept before.
fn team_key(team: DocumentId) -> Option<String> {
    let location = window().location();
    if let Some(key) = location.hash().ok().and_then(|h| h.strip_prefix("#key=").map(str::to_owned)) {
        if let Some(storage) = storage() {
            let _ = storage.set_item(&key_storage(team), &key);
        }
        if let Ok(history) = window().history() {
            let path = location.pathname().unwrap_or_default();
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
        }
        return Some(key);
    }
    storage().and_then(|s| s.get_item(&key_storage(team)).ok().flatten())
}

#[component]
pub fn TeamPage(id: DocumentId) -> impl IntoView {
    let session = BoardSession::start_team(id);
    let view = session.view;
    let session = StoredValue::new_local(session);
    let key = team_key(id);
    let ledger = view.ledger;
    Effect::new(move |_| {
        if let Some(name) = ledger.with(|l| l.as_ref().map(|l| l.name.clone())) {
            recent::remember_team(&id.to_string(), &name);
            document().set_title(&format!("{name} · Hindsight"));
        }
    });
    let set_status = move |action: String, to: Status, reason: String| {
        session.with_value(|s| {
            if let Err(e) = s.change_board(|tx| ledger::set_status(tx, &action, to, &reason)) {
                leptos::logging::warn!("hindsight: {e}");
            }
        });
    };
    view! {
        <div class="page team-page">
            <header class="topbar">
                <Brand />
                <h1 id="team-name" class="board-title">
                    {move || ledger.with(|l| l.as_ref().map(|l| l.name.clone()).unwrap_or_else(|| "Team".into()))}
                </h1>
                <ConnectionIndicator status=view.status pending=view.pending stored=view.stored />
            </header>
            <Show
                when=move || !view.unavailable.get()
                fallback=|| {
                    view! {
                        <main id="not-found" class="message">
                            <h1>"This team does not exist"</h1>
                            <p>"Check the link, or start a new team."</p>
                            <a class="primary" href="/">
                                "Home"
                            </a>
                        </main>
                    }
                }
            >
                <main class="team-main">
                    <NewRetro team=id />
                    <Actions ledger set_status />
                    <Charts ledger />
                    <Recurring ledger />
                    <section class="card team-export" aria-labelledby="team-export-title">
                        <h2 id="team-export-title">"Export"</h2>
                        <p>
                            <a href=api::team_export(id, "csv") download>
                                "Actions as CSV"
                            </a>
                            " · "
                            <a href=api::team_export(id, "md") download>
                                "Actions as Markdown"
                            </a>
                            " · "
                            <a href=api::team_export(id, "json") download>
                                "The whole team as JSON"
                            </a>
                        </p>
                    </section>
                    {key.clone().map(|key| view! { <TeamSettings team=id key /> })}
                </main>
            </Show>
        </div>
    }
}

/// "New retro": a title and a template; the retro belongs to the team and begins by reviewing
/// its open actions.
#[component]
fn NewRetro(team: DocumentId) -> impl IntoView {
    let title = RwSignal::new(String::new());
    let template = RwSignal::new(TEMPLATES[0].id.to_owned());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let start = move || {
        let chosen = title.get_untracked().trim().to_owned();
        if chosen.is_empty() {
            error.set(Some("Give the retro a title.".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let made = client_api::create_team_board(&team.to_string(), &chosen, &template.get_untracked()).await;
            open_made(made.map(|c| (api::board_page(&c.board_id), c.facilitator_key)), error, busy);
        });
    };
    view! {
        <form
            class="card new-retro"
            aria-labelledby="new-retro-title"
            on:submit=move |ev| {
                ev.prevent_default();
                start();
            }
        >
            <h2 id="new-retro-title">"New retro"</h2>
            <div class="new-retro-row">
                <input
                    id="retro-title"
                    type="text"
                    aria-label="Retro title"
                    placeholder="Sprint 43 retrospective"
                    maxlength=MAX_TITLE_CHARS
                    autocomplete="off"
                    prop:value=move || title.get()
                    on:input=move |ev| title.set(event_target_value(&ev))
                />
                <select
                    id="retro-template"
                    aria-label="Template"
                    on:change=move |ev| template.set(event_target_value(&ev))
                >
                    {TEMPLATES.iter().map(|t| view! { <option value=t.id>{t.name}</option> }).collect_view()}
                </select>
                <button id="new-retro" type="submit" class="primary" disabled=move || busy.get()>
                    {move || if busy.get() { "Starting…" } else { "Start retro" }}
                </button>
            </div>
            <FormError error />
        </form>
    }
}

/// Every action of the team, filtered, each with its status to change.
#[component]
fn Actions(
    ledger: RwSignal<Option<Ledger>>,
    set_status: impl Fn(String, Status, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let filter = RwSignal::new(Filter::Open);
    // A long list shows its first rows, and more on demand.
    let shown = RwSignal::new(PAGE);
    let today = today();
    let rows = {
        let today = today.clone();
        Memo::new(move |_| {
            ledger.with(|l| {
                let Some(l) = l else { return Vec::new() };
                let mut actions: Vec<(LedgerAction, String)> = l
                    .actions
                    .values()
                    .filter(|a| filter.get().keeps(a, &today))
                    .map(|a| (a.clone(), l.retros.get(&a.board).map(|r| r.title.clone()).unwrap_or_default()))
                    .collect();
                actions.sort_by(|(a, _), (b, _)| {
                    (b.status.is_open(), b.carried, &a.due, a.created_at).cmp(&(
                        a.status.is_open(),
                        a.carried,
                        &b.due,
                        b.created_at,
                    ))
                });
                actions
            })
        })
    };
    let counts = move || {
        ledger.with(|l| {
            l.as_ref().map_or((0, 0), |l| (l.actions.len(), l.actions.values().filter(|a| a.status.is_open()).count()))
        })
    };
    view! {
        <section class="card team-actions" id="team-actions" aria-labelledby="team-actions-title">
            <h2 id="team-actions-title">
                "Action items "
                <span class="muted">{move || { let (all, open) = counts(); format!("{open} open of {all}") }}</span>
            </h2>
            <div class="filters" role="group" aria-label="Show">
                {Filter::ALL
                    .into_iter()
                    .map(|f| {
                        view! {
                            <button
                                type="button"
                                class="chip filter"
                                data-filter=f.title().to_lowercase()
                                aria-pressed=move || (filter.get() == f).to_string()
                                on:click=move |_| {
                                    filter.set(f);
                                    shown.set(PAGE);
                                }
                            >
                                {f.title()}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
            <Show when=move || rows.with(Vec::is_empty)>
                <p class="muted empty">"Nothing here. Actions arrive when a retro of the team is done."</p>
            </Show>
            <ul class="team-action-list">
                <For
                    each=move || rows.with(|r| r.iter().take(shown.get()).cloned().collect::<Vec<_>>())
                    key=|(a, _)| (a.id.clone(), a.status, a.reason.clone(), a.carried, a.done_at)
                    children=move |(action, retro)| {
                        view! { <ActionRow action retro today=today.clone() set_status /> }
                    }
                />
            </ul>
            <Show when=move || { rows.with(Vec::len) > shown.get() }>
                <button type="button" class="secondary" id="more-actions" on:click=move |_| shown.update(|n| *n += PAGE)>
                    {move || format!("Show more ({} not shown)", rows.with(Vec::len) - shown.get())}
                </button>
            </Show>
        </section>
    }
}

/// How many actions the list shows at first, and adds each time.
const PAGE: usize = 100;

#[component]
fn ActionRow(
    action: LedgerAction,
    retro: String,
    today: String,
    set_status: impl Fn(String, Status, String) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let age_days = ((js_sys::Date::now() as i64 - action.created_at) / 86_400_000).max(0);
    let overdue = action.is_overdue(&today);
    let current = action.status;
    let id = action.id.clone();
    let reason_id = action.id.clone();
    let mut facts = Vec::new();
    if !action.owner.is_empty() {
        facts.push(format!("owner {}", action.owner));
    }
    if !action.due.is_empty() {
        facts.push(format!("due {}", action.due));
    }
    facts.push(match age_days {
        0 => "agreed today".to_owned(),
        1 => "agreed yesterday".to_owned(),
        n => format!("agreed {n} days ago"),
    });
    if !retro.is_empty() {
        facts.push(format!("in {retro}"));
    }
    view! {
        <li class="team-action" data-status=current.as_str() data-overdue=overdue.to_string()>
            <div class="team-action-text">
                <strong>{action.text.clone()}</strong>
                <span class="muted">{facts.join(" · ")}</span>
                {(!action.origin.is_empty()).then(|| view! { <span class="muted">{format!("addresses: {}", action.origin)}</span> })}
                {(action.carried > 0)
                    .then(|| view! { <span class="chip carried">{crate::ui::board::carried_label(action.carried)}</span> })}
                {overdue.then(|| view! { <span class="chip overdue">"overdue"</span> })}
            </div>
            <select
                class="team-action-status"
                aria-label=format!("Status of: {}", action.text)
                on:change=move |ev| {
                    if let Some(to) = Status::parse(&event_target_value(&ev)) {
                        set_status(id.clone(), to, String::new());
                    }
                }
            >
                {Status::ALL
                    .into_iter()
                    .filter(|s| current.may_become(*s))
                    .map(|s| view! { <option value=s.as_str() selected=s == current>{s.title()}</option> })
                    .collect_view()}
            </select>
            {(current == Status::Dropped)
                .then(|| {
                    view! {
                        <input
                            class="team-action-reason"
                            type="text"
                            aria-label="Why it was dropped"
                            placeholder="Why was it dropped?"
                            maxlength=MAX_REASON_CHARS
                            prop:value=action.reason.clone()
                            on:change=move |ev| set_status(reason_id.clone(), Status::Dropped, event_target_value(&ev))
                        />
                    }
                })}
        </li>
    }
}

/// The four charts, one bar group per finished retro, oldest first.
#[component]
fn Charts(ledger: RwSignal<Option<Ledger>>) -> impl IntoView {
    let percent: fn(f64) -> String = |v| format!("{:.0}%", v * 100.0);
    let one_decimal: fn(f64) -> String = |v| format!("{v:.1}");
    let whole: fn(f64) -> String = |v| format!("{v:.0}");
    view! {
        <section class="card team-charts" id="team-charts" aria-labelledby="team-charts-title">
            <h2 id="team-charts-title">"How the retros go"</h2>
            {move || {
                let figures = ledger.with(|l| l.as_ref().map(Ledger::figures).unwrap_or_default());
                if figures.is_empty() {
                    return view! { <p class="muted empty">"Charts appear once a retro of the team is done."</p> }.into_any();
                }
                let labels: Vec<String> = figures.iter().map(|f| f.title.clone()).collect();
                let values = |read: fn(&ledger::RetroFigures) -> Option<f64>| figures.iter().map(read).collect::<Vec<_>>();
                let most = |read: fn(&ledger::RetroFigures) -> i64| figures.iter().map(read).max().unwrap_or(1).max(1) as f64;
                view! {
                    <div class="charts">
                        <BarChart
                            id="chart-roti"
                            title="ROTI (1–5)"
                            labels=labels.clone()
                            series=vec![Series { name: "mean ROTI", class: "roti", values: values(|f| f.roti) }]
                            max=5.0
                            show=one_decimal
                            empty="No ROTI published yet: it shows once at least three people rate a retro."
                        />
                        <BarChart
                            id="chart-follow-through"
                            title="Actions done"
                            labels=labels.clone()
                            series=vec![
                                Series { name: "done", class: "completion", values: values(|f| f.completion) },
                                Series { name: "on time", class: "on-time", values: values(|f| f.on_time) },
                            ]
                            max=1.0
                            show=percent
                        />
                        <BarChart
                            id="chart-writers"
                            title="People who wrote"
                            labels=labels.clone()
                            series=vec![Series { name: "writers", class: "writers", values: values(|f| Some(f.writers as f64)) }]
                            max=most(|f| f.writers)
                            show=whole
                        />
                        <BarChart
                            id="chart-notes"
                            title="Notes"
                            labels=labels
                            series=vec![Series { name: "notes", class: "notes", values: values(|f| Some(f.notes as f64)) }]
                            max=most(|f| f.notes)
                            show=whole
                        />
                    </div>
                }
                    .into_any()
            }}
        </section>
    }
}

/// The causes that came back, most often first.
#[component]
fn Recurring(ledger: RwSignal<Option<Ledger>>) -> impl IntoView {
    let day = |ms: i64| ledger::iso_day(ms);
    view! {
        <section class="card team-recurring" id="team-recurring" aria-labelledby="team-recurring-title">
            <h2 id="team-recurring-title">"Causes that came back"</h2>
            {move || {
                ledger.with(|l| {
                    let recurring = l.as_ref().map(Ledger::recurring).unwrap_or_default();
                    if recurring.is_empty() {
                        return view! { <p class="muted empty">"No cause has come back yet."</p> }.into_any();
                    }
                    view! {
                        <ol class="recurring-list">
                            {recurring
                                .into_iter()
                                .map(|r| {
                                    view! {
                                        <li class="recurring" data-after-fix=r.after_fix.to_string()>
                                            <strong>{r.title.to_owned()}</strong>
                                            <span class="muted">
                                                {format!("seen in {} retros · last {}", r.causes.len(), day(r.last_seen))}
                                            </span>
                                            {r.after_fix.then(|| view! { <span class="chip overdue">"came back after its actions were done"</span> })}
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ol>
                    }
                        .into_any()
                })
            }}
        </section>
    }
}

/// For a team key holder: rename the team.
#[component]
fn TeamSettings(team: DocumentId, key: String) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let said = RwSignal::new(None::<String>);
    let key = StoredValue::new(key);
    let rename = move || {
        let chosen = name.get_untracked().trim().to_owned();
        let key = key.get_value();
        spawn_local(async move {
            let change = api::TeamChange::Rename { name: chosen };
            let result = client_api::manage_team(&team.to_string(), &key, change).await;
            said.set(Some(result.map_or_else(|e| e, |()| "Renamed.".to_owned())));
        });
    };
    view! {
        <form
            class="card team-settings"
            aria-labelledby="team-settings-title"
            on:submit=move |ev| {
                ev.prevent_default();
                rename();
            }
        >
            <h2 id="team-settings-title">"Team settings"</h2>
            <p class="muted">"You hold the team key: keep the link you were given to rename the team or remove a retro from it."</p>
            <div class="new-retro-row">
                <input
                    id="team-rename"
                    type="text"
                    aria-label="New team name"
                    maxlength=MAX_TEAM_NAME_CHARS
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
                <button type="submit" class="secondary">
                    "Rename"
                </button>
            </div>
            <p role="status">{move || said.get()}</p>
        </form>
    }
}
