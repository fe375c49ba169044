//! The people panel: who is here, how many notes each is writing, who has voted (never what),
//! who is ready — and the facilitator's hand-over and co-facilitators.

use hindsight_shared::edit;
use hindsight_shared::presence::PresenceEntry;
use hindsight_shared::schema::Phase;
use hindsight_shared::text;
use leptos::prelude::*;

use super::{Ctx, Keyed};

/// What to say about a person in this phase.
fn status(person: &PresenceEntry, phase: Phase) -> String {
    match phase {
        Phase::Write => match person.notes.unwrap_or(0) {
            0 => "thinking…".to_owned(),
            n => text::count(n, "note", "notes"),
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
    let roster = Keyed::new(move || people.with(|p| p.iter().map(|p| (p.id.clone(), p.clone())).collect()));
    let connected = ctx.connected;
    let online = move || {
        if connected.get() {
            people.with(|p| p.iter().filter(|p| p.online).count()).to_string()
        } else {
            "–".to_owned()
        }
    };
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
                        n => format!("{} not voted yet.", text::count(n as i64, "person has", "people have")),
                    }}
                </p>
            </Show>
            <Show when=move || people.with(Vec::is_empty)>
                <p class="people-note">"Who is here shows once the server is reachable."</p>
            </Show>
            <Show when=move || !connected.get() && !people.with(Vec::is_empty)>
                <p class="people-note" id="presence-unknown">
                    "You are offline: who is here shows again once you are back."
                </p>
            </Show>
            <ul class="people-list">
                <For
                    each=move || roster.order.get()
                    key=|id| id.clone()
                    children=move |id| {
                        let person = roster.row(id.clone());
                        let mine = id == me;
                        view! { <Person id person mine /> }
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

/// One person: name, what they are doing in this phase, and for facilitators the hand-over and
/// co-facilitation.
#[component]
fn Person(id: String, person: Memo<Option<PresenceEntry>>, mine: bool) -> impl IntoView {
    let ctx = Ctx::get();
    let flag = move |read: fn(&PresenceEntry) -> bool| move || person.with(|p| p.as_ref().is_some_and(read));
    let (online, ready, voted, facilitator) =
        (flag(|p| p.online), flag(|p| p.ready), flag(|p| p.voted), flag(|p| p.facilitator));
    // Offline, this browser cannot know who else is here: it shows them as away.
    let connected = ctx.connected;
    let online = move || online() && (mine || connected.get());
    let name = move || {
        person.with(|p| match p.as_ref().map(|p| p.name.as_str()) {
            None | Some("") => "Anonymous".to_owned(),
            Some(name) => name.to_owned(),
        })
    };
    let label = move || if mine { format!("{} (you)", name()) } else { name() };
    let line = move || person.with(|p| p.as_ref().map(|p| status(p, ctx.phase())).unwrap_or_default());
    let co = {
        let id = id.clone();
        ctx.part(move |b| b.co_facilitators.contains_key(&id))
    };
    let lead = {
        let id = id.clone();
        ctx.part(move |b| b.facilitator.as_deref() == Some(id.as_str()))
    };
    let (hand_over_id, co_id) = (id.clone(), id.clone());
    view! {
        <li class="person" data-person=id class:offline=move || !online() class:ready=ready class:voted=voted>
            <span class="avatar" aria-hidden="true">
                {move || initials(&name())}
            </span>
            <span class="person-text">
                <span class="person-name" title=label>
                    {label}
                </span>
                <Show when=facilitator>
                    <span class="person-role">
                        <span class="crown" aria-hidden="true">"★ "</span>
                        {move || if lead.get() { "facilitator" } else { "co-facilitator" }}
                    </span>
                </Show>
                <span class="person-status">{line}</span>
            </span>
            <Show when=ready>
                <span class="ready-mark" title="Ready" role="img" aria-label="ready">"✓"</span>
            </Show>
            <Show when=move || ctx.is_facilitator() && !mine && !lead.get() && ctx.phase() != Phase::Done>
                <span class="person-actions">
                    {
                        let id = hand_over_id.clone();
                        let who = name;
                        view! {
                            <button
                                class="hand-over chip-button"
                                title="Make this person the facilitator"
                                aria-label=move || format!("Hand over to {}", who())
                                on:click=move |_| ctx.edit_board(|tx| edit::hand_over(tx, &id))
                            >
                                "Hand over"
                            </button>
                        }
                    }
                    {
                        let id = co_id.clone();
                        let who = name;
                        view! {
                            <button
                                class="co-facilitate chip-button"
                                aria-pressed=move || co.get().to_string()
                                aria-label=move || format!("Co-facilitator: {}", who())
                                on:click=move |_| {
                                    let on = !co.get_untracked();
                                    ctx.edit_board(|tx| edit::set_co_facilitator(tx, &id, on))
                                }
                            >
                                "Co-facilitator"
                            </button>
                        }
                    }
                </span>
            </Show>
        </li>
    }
}
