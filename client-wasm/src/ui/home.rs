//! The home page: a title, a template picker, and the button that creates a board.

use hindsight_shared::ledger::MAX_TEAM_NAME_CHARS;
use hindsight_shared::schema::MAX_TITLE_CHARS;
use hindsight_shared::templates::TEMPLATES;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::recent::{self, Visited};
use crate::ui::{Brand, FormError, open_made};

#[component]
pub fn Home() -> impl IntoView {
    let title = RwSignal::new(String::new());
    let template = RwSignal::new(TEMPLATES[0].id);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let create = move || {
        let chosen = title.get_untracked();
        let chosen = chosen.trim().to_owned();
        if chosen.is_empty() {
            error.set(Some("Give the board a title.".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let made = api::create_board(&chosen, template.get_untracked()).await;
            let made = made.map(|c| (hindsight_shared::api::board_page(&c.board_id), c.facilitator_key));
            open_made(made, error, busy);
        });
    };

    // A radio group is one stop for Tab; the arrow keys move the choice (and the focus) within.
    let pick_with_arrows = move |ev: web_sys::KeyboardEvent| {
        let step: isize = match ev.key().as_str() {
            "ArrowRight" | "ArrowDown" => 1,
            "ArrowLeft" | "ArrowUp" => -1,
            _ => return,
        };
        ev.prevent_default();
        let at = TEMPLATES.iter().position(|t| t.id == template.get_untracked()).unwrap_or(0) as isize;
        let next = &TEMPLATES[(at + step).rem_euclid(TEMPLATES.len() as isize) as usize];
        template.set(next.id);
        if let Some(button) = document()
            .query_selector(&format!(".template[data-template='{}']", next.id))
            .ok()
            .flatten()
            .and_then(|e| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(e).ok())
        {
            let _ = button.focus();
        }
    };
    view! {
        <div class="page home">
            <header class="topbar">
                <Brand />
            </header>
            <main class="home-main">
                <section class="hero">
                    <h1>"Retros and postmortems your team will want to join"</h1>
                    <p>
                        "Write in private, reveal together, cluster to root causes, dot-vote and leave with owned actions. "
                        "Live for everyone, and it keeps working when the Wi-Fi doesn't."
                    </p>
                </section>
                <form
                    class="create-card"
                    on:submit=move |ev| {
                        ev.prevent_default();
                        create();
                    }
                >
                    <label class="field-label" for="title">
                        "Board title"
                    </label>
                    <input
                        id="title"
                        name="title"
                        type="text"
                        placeholder="Sprint 42 retrospective"
                        maxlength=MAX_TITLE_CHARS
                        autocomplete="off"
                        autofocus
                        prop:value=move || title.get()
                        on:input=move |ev| title.set(event_target_value(&ev))
                    />
                    <span class="field-label">"Template"</span>
                    <div class="templates" role="radiogroup" aria-label="Template" on:keydown=pick_with_arrows>
                        {TEMPLATES
                            .iter()
                            .map(|t| {
                                let id = t.id;
                                view! {
                                    <button
                                        type="button"
                                        class="template"
                                        role="radio"
                                        data-template=id
                                        aria-checked=move || (template.get() == id).to_string()
                                        tabindex=move || if template.get() == id { "0" } else { "-1" }
                                        on:click=move |_| template.set(id)
                                    >
                                        <span class="template-name">{t.name}</span>
                                        <span class="template-description">{t.description}</span>
                                        <span class="template-columns">
                                            {t
                                                .columns
                                                .iter()
                                                .map(|c| view! { <span class="chip">{c.title}</span> })
                                                .collect_view()}
                                        </span>
                                    </button>
                                }
                            })
                            .collect_view()}
                    </div>
                    <FormError error />
                    <button id="create" type="submit" class="primary" disabled=move || busy.get()>
                        {move || if busy.get() { "Creating…" } else { "Create board" }}
                    </button>
                </form>
                <NewTeam />
                <YourBoards />
            </main>
        </div>
    }
}

/// "New team": a name, and the team page with its key.
#[component]
fn NewTeam() -> impl IntoView {
    let name = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let create = move || {
        let chosen = name.get_untracked().trim().to_owned();
        if chosen.is_empty() {
            error.set(Some("Give the team a name.".into()));
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            let made = api::create_team(&chosen).await;
            open_made(made.map(|c| (hindsight_shared::api::team_page(&c.team_id), c.team_key)), error, busy);
        });
    };
    view! {
        <form
            class="card new-team"
            aria-labelledby="new-team-title"
            on:submit=move |ev| {
                ev.prevent_default();
                create();
            }
        >
            <h2 id="new-team-title">"A team that meets again"</h2>
            <p class="muted">
                "A team keeps its retros together: open actions come back at the next retro, and its page tracks what got done."
            </p>
            <div class="new-retro-row">
                <input
                    id="team-name-input"
                    type="text"
                    aria-label="Team name"
                    placeholder="Platform team"
                    maxlength=MAX_TEAM_NAME_CHARS
                    autocomplete="off"
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
                <button id="create-team" type="submit" class="secondary" disabled=move || busy.get()>
                    {move || if busy.get() { "Creating…" } else { "New team" }}
                </button>
            </div>
            <FormError error />
        </form>
    }
}

/// The boards this browser opened, newest first, with their phase and the day they were last
/// open here; each can be taken off the list.
#[component]
fn YourBoards() -> impl IntoView {
    let boards = RwSignal::new(recent::list());
    let day = |at: f64| -> String {
        let iso: String = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(at)).to_iso_string().into();
        iso.chars().take(10).collect()
    };
    view! {
        <Show when=move || boards.with(|b| !b.is_empty())>
            <section class="your-boards card" aria-labelledby="your-boards-title">
                <h2 id="your-boards-title">"Your boards"</h2>
                <ul class="your-boards-list">
                    <For
                        each=move || boards.get()
                        key=|b: &Visited| b.id.clone()
                        children=move |b: Visited| {
                            let id = b.id.clone();
                            let forget = move |_| {
                                recent::forget(&id);
                                boards.set(recent::list());
                            };
                            view! {
                                <li class="your-board" data-board=b.id.clone()>
                                    <a
                                        class="your-board-title"
                                        href=if b.team {
                                            hindsight_shared::api::team_page(&b.id)
                                        } else {
                                            hindsight_shared::api::board_page(&b.id)
                                        }
                                    >
                                        {b.title.clone()}
                                    </a>
                                    <span class="chip your-board-phase">{b.phase.clone()}</span>
                                    <span class="muted your-board-day">{day(b.seen_at)}</span>
                                    <button
                                        type="button"
                                        class="secondary your-board-forget"
                                        aria-label=format!("Forget {}", b.title)
                                        on:click=forget
                                    >
                                        "Forget"
                                    </button>
                                </li>
                            }
                        }
                    />
                </ul>
            </section>
        </Show>
    }
}
