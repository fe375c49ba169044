//! The phase bar: where the retro stands, the facilitator's controls to move it, and the shared
//! timer.

use hindsight_shared::edit;
use hindsight_shared::rules;
use hindsight_shared::schema::{MAX_VOTE_BUDGET, Phase, Settings};
use leptos::prelude::*;

use super::{Ctx, clock};

/// One line of help per phase, for everyone.
pub fn hint(phase: Phase) -> &'static str {
    match phase {
        Phase::Review => "Look back at the team's open actions: what is done, under way, dropped or still open?",
        Phase::Write => "Write your notes. Nobody sees their text until the facilitator reveals them.",
        Phase::Reveal => "The facilitator reveals the notes, column by column or all at once.",
        Phase::Group => "Drag a note onto another to group them, and name each group's root cause.",
        Phase::Vote => "Place your dots on what matters most. Votes stay private until voting closes.",
        Phase::Discuss => "Talk through the top items, one at a time, and capture actions.",
        Phase::Actions => "Agree on action items, each with an owner.",
        Phase::Done => "This retro is done. Here is what came out of it.",
    }
}

#[component]
pub fn PhaseBar() -> impl IntoView {
    let ctx = Ctx::get();
    let phase = move || ctx.phase();
    let go = move |to: Option<Phase>| {
        if let Some(to) = to {
            ctx.edit_board(|tx| edit::set_phase(tx, to));
        }
    };
    // Review shows only on a board that began with one.
    let reviews = ctx.part(|b| !b.review.is_empty());
    view! {
        <nav class="phase-bar" aria-label="Phases">
            <ol class="steps">
                {move || Phase::ALL
                    .iter()
                    .filter(|&&step| step != Phase::Review || reviews.get())
                    .enumerate()
                    .map(|(number, &step)| {
                        view! {
                            <li
                                class="step"
                                data-phase=step.as_str()
                                class:current=move || phase() == step
                                class:past=move || step < phase()
                                aria-current=move || (phase() == step).then_some("step")
                            >
                                <span class="step-number">{number + 1}</span>
                                <span class="step-name">{step.title()}</span>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
            <div class="phase-row">
                <p class="hint" id="phase-hint">
                    {move || hint(phase())}
                </p>
                <Show when=move || ctx.is_facilitator()>
                    <WeakAnonymity />
                </Show>
                <Timer />
                <Show when=move || ctx.is_facilitator()>
                    <div class="facilitator-controls">
                        <Show when=move || rules::can_change_settings(phase())>
                            <SettingsMenu />
                        </Show>
                        <IncidentToggle />
                        <Show when=move || phase() == Phase::Reveal>
                            <button
                                id="reveal-all"
                                class="secondary"
                                on:click=move |_| ctx.edit_board(|tx| edit::reveal_all(tx))
                            >
                                "Reveal all"
                            </button>
                        </Show>
                        <button
                            id="prev-phase"
                            class="secondary"
                            aria-disabled=move || phase().previous().is_none().to_string()
                            on:click=move |_| go(phase().previous())
                        >
                            "← Back"
                        </button>
                        <button
                            id="next-phase"
                            class="primary"
                            aria-disabled=move || phase().next().is_none().to_string()
                            on:click=move |_| go(phase().next())
                        >
                            {move || phase().next().map_or_else(|| "Finished".to_owned(), |p| format!("Next: {} →", p.title()))}
                        </button>
                    </div>
                </Show>
            </div>
        </nav>
    }
}

/// Tells the facilitator, before notes are revealed or votes counted, when so few people took
/// part that each could tell the others' apart: two writers each know which notes are the
/// other's, two voters each can work out the other's dots from the totals.
#[component]
fn WeakAnonymity() -> impl IntoView {
    let ctx = Ctx::get();
    let people = ctx.view.people;
    let warning = move || {
        let writing = ctx.phase() == Phase::Write;
        let count = match ctx.phase() {
            Phase::Write => people.with(|p| p.iter().filter(|e| e.notes.unwrap_or(0) > 0).count()),
            Phase::Vote => people.with(|p| p.iter().filter(|e| e.voted).count()),
            _ => return None,
        };
        let text = match (count, writing) {
            (1, true) => "Only one person wrote notes: once they are revealed, everyone can tell they are theirs.",
            (2, true) => "Only two people wrote notes: once they are revealed, each can tell which are the other's.",
            (1, false) => "Only one person voted: the totals will show everyone where they put their dots.",
            (2, false) => "Only two people voted: from the totals, each can work out where the other put their dots.",
            _ => return None,
        };
        Some(format!("{text} Anonymity needs at least three."))
    };
    view! {
        <Show when=move || warning().is_some()>
            <p class="weak-anonymity" id="weak-anonymity" role="note">
                {move || warning().unwrap_or_default()}
            </p>
        </Show>
    }
}

/// The longest timer the facilitator can start from the field, in minutes (the rules allow a
/// day).
const MAX_TIMER_MINUTES: i64 = 240;

/// The shared countdown. Everyone sees it; the facilitator starts it (2, 5 or 10 minutes, or any
/// length up to four hours) and stops it. A finished retro shows none.
#[component]
fn Timer() -> impl IntoView {
    let ctx = Ctx::get();
    let ends_at = ctx.part(|b| b.timer.ends_at);
    let remaining = move || ends_at.get().filter(|_| ctx.phase() != Phase::Done).map(|end| end - ctx.server_now());
    let start = move |minutes: i64| {
        let now = js_sys::Date::now() as i64 + ctx.view.clock_offset.get_untracked();
        ctx.edit_board(|tx| edit::start_timer(tx, minutes * 60_000, now));
        ctx.announce(&format!("A {}-minute timer started.", minutes));
    };
    let minutes = RwSignal::new(String::from("15"));
    let custom = move || minutes.with(|m| m.trim().parse::<i64>().ok().filter(|m| (1..=MAX_TIMER_MINUTES).contains(m)));
    view! {
        <div class="timer-box">
            <Show when=move || remaining().is_some()>
                <span id="timer" class="timer" role="timer" aria-label="Time left" class:expired=move || remaining().is_some_and(|r| r <= 0)>
                    {move || remaining().map(|r| if r > 0 { clock(r) } else { "Time's up".to_owned() })}
                </span>
            </Show>
            <Show when=move || ctx.is_facilitator() && ctx.phase() != Phase::Done>
                <span class="timer-controls" role="group" aria-label="Timer">
                    {[2, 5, 10]
                        .into_iter()
                        .map(|minutes| {
                            view! {
                                <button
                                    class="start-timer chip-button"
                                    data-minutes=minutes
                                    title=format!("Start a {minutes}-minute timer")
                                    aria-label=format!("{minutes} min: start a timer")
                                    on:click=move |_| start(minutes)
                                >
                                    {format!("{minutes} min")}
                                </button>
                            }
                        })
                        .collect_view()}
                    <form
                        class="custom-timer"
                        on:submit=move |ev| {
                            ev.prevent_default();
                            if let Some(m) = custom() {
                                start(m);
                            }
                        }
                    >
                        <input
                            id="timer-minutes"
                            type="number"
                            min="1"
                            max=MAX_TIMER_MINUTES
                            aria-label="Timer length in minutes"
                            prop:value=move || minutes.get()
                            on:input=move |ev| minutes.set(event_target_value(&ev))
                        />
                        <button id="start-custom-timer" type="submit" class="chip-button" disabled=move || custom().is_none()>
                            "min ▶"
                        </button>
                    </form>
                    <Show when=move || ends_at.get().is_some()>
                        <button
                            id="stop-timer"
                            class="chip-button"
                            on:click=move |_| ctx.edit_board(|tx| edit::stop_timer(tx))
                        >
                            "Stop"
                        </button>
                    </Show>
                </span>
            </Show>
        </div>
    }
}

/// The facilitator's board settings: anonymity (until a note is published) and the vote budget.
#[component]
fn SettingsMenu() -> impl IntoView {
    let ctx = Ctx::get();
    let open = RwSignal::new(false);
    let settings = ctx.part(|b| b.settings.clone());
    let published = ctx.part(|b| !b.notes.is_empty());
    let (settings, published) = (move || settings.get(), move || published.get());
    let save = move |change: &dyn Fn(&mut Settings)| {
        let mut next = settings();
        change(&mut next);
        next.vote_budget = next.vote_budget.clamp(1, MAX_VOTE_BUDGET);
        next.max_votes_per_item = next.max_votes_per_item.clamp(1, next.vote_budget);
        ctx.edit_board(|tx| edit::set_settings(tx, &next));
    };
    let number = |ev: &leptos::ev::Event| event_target_value(ev).parse::<i64>().ok();
    let button = NodeRef::new();
    let on_key = super::closes_on_escape(open, button);
    view! {
        <div class="settings" on:keydown=on_key>
            <button
                id="settings"
                node_ref=button
                class="secondary"
                aria-expanded=move || open.get().to_string()
                aria-controls="settings-panel"
                on:click=move |_| open.update(|o| *o = !*o)
            >
                "Settings"
            </button>
            <Show when=move || open.get()>
                <div class="settings-panel" id="settings-panel" role="dialog" aria-label="Board settings">
                    <label>
                        <input
                            id="setting-anonymous"
                            type="checkbox"
                            prop:checked=move || settings().anonymous
                            disabled=published
                            on:change=move |ev| {
                                let on = event_target_checked(&ev);
                                save(&|s| s.anonymous = on)
                            }
                        />
                        " Anonymous notes"
                    </label>
                    <p class="muted small">
                        {move || if published() { "Fixed: notes are already revealed." } else { "When off, each note shows its author's name." }}
                    </p>
                    <label>
                        "Dots per person "
                        <input
                            id="setting-budget"
                            type="number"
                            min="1"
                            max=MAX_VOTE_BUDGET
                            prop:value=move || settings().vote_budget.to_string()
                            on:change=move |ev| {
                                if let Some(n) = number(&ev) {
                                    save(&|s| s.vote_budget = n)
                                }
                            }
                        />
                    </label>
                    <label>
                        "At most per item "
                        <input
                            id="setting-max"
                            type="number"
                            min="1"
                            prop:value=move || settings().max_votes_per_item.to_string()
                            on:change=move |ev| {
                                if let Some(n) = number(&ev) {
                                    save(&|s| s.max_votes_per_item = n)
                                }
                            }
                        />
                    </label>
                </div>
            </Show>
        </div>
    }
}

/// The facilitator turns the incident's facts on (or off) for this board.
#[component]
fn IncidentToggle() -> impl IntoView {
    let ctx = Ctx::get();
    let on = ctx.part(|b| b.incident.on);
    view! {
        <Show when=move || ctx.phase() != Phase::Done>
            <button
                id="incident-toggle"
                type="button"
                class="secondary"
                aria-pressed=move || on.get().to_string()
                on:click=move |_| {
                    let to = !on.get_untracked();
                    ctx.edit_board(move |tx| edit::show_incident(tx, to));
                }
            >
                "Incident facts"
            </button>
        </Show>
    }
}
