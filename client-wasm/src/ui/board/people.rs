//! The people panel: who is here, how many notes each is writing, who has voted (never what),
//! who is ready — and the facilitator's hand-over.

use hindsight_shared::edit;
use hindsight_shared::presence::PresenceEntry;
use hindsight_shared::schema::Phase;
use leptos::prelude::*;

use super::Ctx;

/// What to say about a person in this phase.
fn status(person: &PresenceEntry, phase: Phase) -> String {
    match phase {
        Phase::Write => match person.notes.unwrap_or(0) {
            0 => "thinking…".to_owned(),
            1 => "1 note".to_owned(),
            n => format!("{n} notes"),
        },
        Phase::Vote if person.voted => "voted".to_owned(),
        Phase::Vote => "not voted yet".to_owned(),
        _ => String::new(),
    }
}

fn initials(name: &str) -> String {
    let letters: String = name.split_whitespace().filter_map(|w| w.chars().next()).take(2).collect();
    if letters.is_empty() { "?".to_owned() } else { letters.to_uppercase() }
}

#[component]
pub fn People() -> impl IntoView {
    let ctx = Ctx::get();
    let me = ctx.me.get_value();
    let people = ctx.view.people;
    let online = move || people.with(|p| p.iter().filter(|p| p.online).count());
    let ready = move || people.with(|p| p.iter().filter(|p| p.online && p.ready).count());
    let my_ready = move || ctx.view.desk.with(|d| d.ready);
    let waiting_votes = move || people.with(|p| p.iter().filter(|p| p.online && !p.voted).count());
    view! {
        <aside class="people" aria-label="People">
            <header class="people-header">
                <h2>"People"</h2>
                <span class="count" title="Online">
                    {online}
                </span>
            </header>
            <Show when=move || ctx.phase() == Phase::Vote && ctx.is_facilitator()>
                <p class="people-note" id="not-voted">
                    {move || match waiting_votes() {
                        0 => "Everyone has voted.".to_owned(),
                        1 => "1 person has not voted yet.".to_owned(),
                        n => format!("{n} people have not voted yet."),
                    }}
                </p>
            </Show>
            <Show when=move || people.with(Vec::is_empty)>
                <p class="people-note">"Who is here shows once the server is reachable."</p>
            </Show>
            <ul class="people-list">
                <For
                    each=move || people.get()
                    key=|p| (p.id.clone(), p.name.clone(), p.online, p.notes, p.voted, p.ready, p.facilitator)
                    children=move |person| {
                        let mine = person.id == me;
                        let id = person.id.clone();
                        let name = if person.name.is_empty() { "Anonymous".to_owned() } else { person.name.clone() };
                        let label = if mine { format!("{name} (you)") } else { name.clone() };
                        let line = status(&person, ctx.phase());
                        view! {
                            <li
                                class="person"
                                data-person=person.id.clone()
                                class:offline=!person.online
                                class:ready=person.ready
                                class:voted=person.voted
                            >
                                <span class="avatar" aria-hidden="true">
                                    {initials(&name)}
                                </span>
                                <span class="person-text">
                                    <span class="person-name">
                                        {label} {person.facilitator.then_some(view! { <span class="crown" title="Facilitator">"★"</span> })}
                                    </span>
                                    <span class="person-status">{line}</span>
                                </span>
                                {person.ready.then_some(view! { <span class="ready-mark" title="Ready">"✓"</span> })}
                                <Show when=move || {
                                    ctx.is_facilitator() && !mine && person.online && ctx.phase() != Phase::Done
                                }>
                                    {
                                        let id = id.clone();
                                        view! {
                                            <button
                                                class="hand-over chip-button"
                                                title="Make this person the facilitator"
                                                on:click=move |_| {
                                                    let id = id.clone();
                                                    ctx.edit_board(move |tx| edit::hand_over(tx, &id))
                                                }
                                            >
                                                "Make facilitator"
                                            </button>
                                        }
                                    }
                                </Show>
                            </li>
                        }
                    }
                />
            </ul>
            <Show when=move || ctx.phase() != Phase::Done>
                <button
                    id="ready"
                    class:primary=move || !my_ready()
                    class:secondary=my_ready
                    on:click=move |_| {
                        let ready = !my_ready();
                        ctx.edit_desk(|tx| edit::set_ready(tx, ready))
                    }
                >
                    {move || if my_ready() { "I'm not done" } else { "I'm done" }}
                </button>
                <p class="people-note">{move || format!("{} of {} ready", ready(), online())}</p>
            </Show>
        </aside>
    }
}
