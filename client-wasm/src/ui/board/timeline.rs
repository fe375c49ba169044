//! The timeline lane above the columns: the incident's events in time order, with the gaps
//! between them and its milestones marked, stars for what the postmortem keeps, and a composer
//! (one event, or many pasted lines with a preview of what was understood). Events are written
//! on this participant's desk and published by the server without an author; this browser
//! knows its own (their published id derives from its desk's secret id) and may take them back.
//! The facilitator may also take any event off the board (a noisy alert), and add pasted lines
//! straight to it, beyond what one desk holds.

use hindsight_shared::edit;
use hindsight_shared::ids::{published_note_id, random_token};
use hindsight_shared::incident::{self, Milestone, Time};
use hindsight_shared::timeline::{self, DeskEvent, Event, GAP_SECONDS, KINDS, MAX_EVENT_CHARS};
use leptos::prelude::*;
use wasm_bindgen::JsValue;

use super::Ctx;

/// How many rows the lane shows before "Show all".
const LANE_ROWS: usize = 300;

/// A row of the lane.
#[derive(Debug, Clone, PartialEq)]
enum Row {
    Event(Event),
    Milestone(Milestone, Time),
    Gap(i64),
}

/// Hours and minutes of a time in the viewer's zone.
fn clock(unix: i64) -> String {
    let d = js_sys::Date::new(&JsValue::from_f64(unix as f64 * 1000.0));
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}

/// Now, as RFC 3339 with the viewer's offset.
fn now_rfc() -> String {
    let d = js_sys::Date::new_0();
    incident::format_time((d.get_time() / 1000.0) as i64, -(d.get_timezone_offset() as i32))
}

#[component]
pub fn Timeline() -> impl IntoView {
    let ctx = Ctx::get();
    let desk = ctx.desk_id;
    let rows = ctx.part(move |b| {
        let mut items: Vec<(i64, Row)> = timeline::ordered(b.timeline.values())
            .into_iter()
            .map(|e| (e.time().map_or(i64::MAX, |t| t.unix), Row::Event(e.clone())))
            .collect();
        for m in Milestone::ALL {
            if let Some(t) = b.incident.at(m) {
                items.push((t.unix, Row::Milestone(m, t)));
            }
        }
        items.sort_by_key(|(at, row)| (*at, matches!(row, Row::Event(..))));
        let mut rows = Vec::with_capacity(items.len());
        let mut last: Option<i64> = None;
        for (at, row) in items {
            if let Some(before) = last
                && at != i64::MAX
                && at - before >= GAP_SECONDS
            {
                rows.push(Row::Gap(at - before));
            }
            if at != i64::MAX {
                last = Some(at);
            }
            rows.push(row);
        }
        rows
    });
    let own = move |id: &str| -> Option<String> {
        ctx.view
            .desk
            .with(|d| d.events.keys().find(|own| published_note_id(&desk, &format!("event:{own}")) == id).cloned())
    };
    let editable = move || ctx.phase() != hindsight_shared::schema::Phase::Done;
    let count = ctx.part(|b| b.timeline.len());
    // A long timeline shows its first rows, and the rest on demand.
    let shown = RwSignal::new(LANE_ROWS);
    view! {
        <details
            class="card timeline"
            id="timeline"
            prop:open=move || ctx.phase() < hindsight_shared::schema::Phase::Group
        >
            <summary>
                <h2 id="timeline-title">{move || format!("Timeline · {} events", count.get())}</h2>
            </summary>
            <p class="muted">"What you add shows without your name, like your notes. Star what the postmortem keeps."</p>
            <Show when=move || rows.with(Vec::is_empty)>
                <p class="muted empty">"No events yet."</p>
            </Show>
            <ol class="timeline-rows">
                {move || {
                    rows.get()
                        .into_iter()
                        .take(shown.get())
                        .map(|row| match row {
                            Row::Gap(seconds) => {
                                view! { <li class="timeline-gap">{format!("{} without an event", incident::duration(seconds))}</li> }
                                    .into_any()
                            }
                            Row::Milestone(m, t) => {
                                view! {
                                    <li class="timeline-milestone" data-milestone=m.key()>
                                        <time>{clock(t.unix)}</time>
                                        <strong>{format!("◆ {}", m.title())}</strong>
                                    </li>
                                }
                                    .into_any()
                            }
                            Row::Event(event) => {
                                let id = event.id.clone();
                                let mine = own(&id);
                                let starred = event.starred;
                                let star_id = id.clone();
                                view! {
                                    <li class="timeline-event" data-kind=event.kind.clone() data-starred=starred.to_string()>
                                        <time>{event.time().map(|t| clock(t.unix)).unwrap_or_default()}</time>
                                        <span class="chip">{event.kind.clone()}</span>
                                        <span class="timeline-text">{event.text.clone()}</span>
                                        {(!event.source.is_empty()).then(|| view! { <span class="muted">{event.source.clone()}</span> })}
                                        <button
                                            type="button"
                                            class="chip-button star"
                                            aria-pressed=starred.to_string()
                                            aria-label=format!("Keep in the postmortem: {}", event.text)
                                            disabled=move || !editable()
                                            on:click=move |_| {
                                                let id = star_id.clone();
                                                ctx.edit_board(move |tx| edit::star_event(tx, &id, !starred));
                                            }
                                        >
                                            {if starred { "★" } else { "☆" }}
                                        </button>
                                        {mine
                                            .is_none()
                                            .then(|| {
                                                let id = id.clone();
                                                let label = format!("Take off the timeline: {}", event.text);
                                                view! {
                                                    <Show when=move || ctx.is_facilitator()>
                                                        <button
                                                            type="button"
                                                            class="chip-button remove-event"
                                                            aria-label=label.clone()
                                                            disabled=move || !editable()
                                                            on:click={
                                                                let id = id.clone();
                                                                move |_| {
                                                                    let id = id.clone();
                                                                    ctx.edit_board(move |tx| edit::remove_event(tx, &id));
                                                                }
                                                            }
                                                        >
                                                            "Remove"
                                                        </button>
                                                    </Show>
                                                }
                                            })}
                                        {mine
                                            .map(|own| {
                                                view! {
                                                    <button
                                                        type="button"
                                                        class="chip-button delete-event"
                                                        aria-label=format!("Take back: {}", event.text)
                                                        disabled=move || !editable()
                                                        on:click=move |_| {
                                                            let own = own.clone();
                                                            ctx.edit_desk(move |tx| edit::delete_desk_event(tx, &own));
                                                        }
                                                    >
                                                        "Take back"
                                                    </button>
                                                }
                                            })}
                                    </li>
                                }
                                    .into_any()
                            }
                        })
                        .collect_view()
                }}
            </ol>
            <Show when=move || { rows.with(Vec::len) > shown.get() }>
                <button type="button" class="secondary" id="more-events" on:click=move |_| shown.set(usize::MAX)>
                    {move || format!("Show all ({} more rows)", rows.with(Vec::len).saturating_sub(shown.get()))}
                </button>
            </Show>
            <Show when=editable>
                <EventForm />
            </Show>
        </details>
    }
}

/// One event, or many pasted lines.
#[component]
fn EventForm() -> impl IntoView {
    let ctx = Ctx::get();
    let text = RwSignal::new(String::new());
    let kind = RwSignal::new(KINDS[0].to_owned());
    let pasted = RwSignal::new(String::new());
    // The paste reads times without an offset in the incident's, else the viewer's.
    let base = move || {
        ctx.with_board(|b| b.incident.at(Milestone::Started))
            .flatten()
            .or_else(|| incident::parse_time(&now_rfc()))
            .unwrap_or(Time { unix: 0, offset_minutes: 0 })
    };
    let keep_names = RwSignal::new(false);
    // The facilitator's pasted lines may go straight onto the board.
    let direct = RwSignal::new(false);
    // A Slack channel export (a JSON list) or lines that start with a time.
    let preview = Memo::new(move |_| {
        let text = pasted.get();
        if text.trim_start().starts_with('[') {
            timeline::parse_slack(&text, base().offset_minutes, keep_names.get()).unwrap_or_else(|e| timeline::Pasted {
                events: Vec::new(),
                not_understood: vec![e.chars().take(160).collect()],
            })
        } else {
            timeline::parse_paste(&text, base())
        }
    });
    let add = move |at: String, text: String, kind: String| {
        let event = DeskEvent { id: random_token::<9>(), at, text, kind, source: String::new() };
        ctx.edit_desk(move |tx| edit::put_desk_event(tx, &event));
    };
    let at = RwSignal::new(String::new());
    view! {
        <form
            class="event-form"
            id="event-form"
            on:submit=move |ev| {
                ev.prevent_default();
                let typed = text.get_untracked().trim().to_owned();
                if typed.is_empty() {
                    return;
                }
                let when = at.get_untracked();
                let when = if when.is_empty() { now_rfc() } else { format!("{when}:00{}", &now_rfc()[19..]) };
                add(when, typed, kind.get_untracked());
                text.set(String::new());
            }
        >
            <input
                type="datetime-local"
                id="event-at"
                aria-label="When it happened (empty: now)"
                prop:value=move || at.get()
                on:change=move |ev| at.set(event_target_value(&ev))
            />
            <select id="event-kind" aria-label="What it was" on:change=move |ev| kind.set(event_target_value(&ev))>
                {KINDS.iter().map(|k| view! { <option value=*k>{*k}</option> }).collect_view()}
            </select>
            <input
                type="text"
                id="event-text"
                aria-label="What happened"
                placeholder="What happened, what you saw"
                maxlength=MAX_EVENT_CHARS
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            />
            <button type="submit" class="secondary" id="add-event">
                "Add"
            </button>
        </form>
        <details class="paste-events">
            <summary>"Paste many lines"</summary>
            <textarea
                id="paste-events"
                aria-label="Lines that start with a time (14:02 text, 2026-11-30 14:02 text, RFC 3339), or a Slack channel export"
                placeholder="14:02 Error rate alert fires\n14:09 Ada acknowledges the page"
                prop:value=move || pasted.get()
                on:input=move |ev| pasted.set(event_target_value(&ev))
            ></textarea>
            <label class="keep-names">
                <input type="checkbox" prop:checked=move || keep_names.get() on:change=move |ev| keep_names.set(event_target_checked(&ev)) />
                "Keep the names of a Slack export (by default they are dropped: the timeline is anonymous)"
            </label>
            <Show when=move || ctx.is_facilitator()>
                <label class="keep-names">
                    <input
                        type="checkbox"
                        id="paste-direct"
                        prop:checked=move || direct.get()
                        on:change=move |ev| direct.set(event_target_checked(&ev))
                    />
                    {format!(
                        "Add straight to the board, as the facilitator (up to {} events; they are removed one by one, not taken back)",
                        timeline::MAX_EVENTS_PER_BOARD,
                    )}
                </label>
            </Show>
            <p class="muted" id="paste-preview" role="status">
                {move || {
                    preview
                        .with(|p| {
                            let mut said = format!("{} understood", p.events.len());
                            if !p.not_understood.is_empty() {
                                said.push_str(&format!("; not understood: {}", p.not_understood.join(" · ")));
                            }
                            said
                        })
                }}
            </p>
            <button
                type="button"
                class="secondary"
                id="add-pasted"
                disabled=move || preview.with(|p| p.events.is_empty())
                on:click=move |_| {
                    let events = preview.get_untracked().events;
                    if direct.get_untracked() && ctx.is_facilitator() {
                        ctx.edit_board(move |tx| {
                            for (at, text) in events {
                                let id = random_token::<12>();
                                let source = "facilitator".to_owned();
                                let event = Event { id, at, text, kind: "event".into(), source, starred: false };
                                edit::publish_event(tx, &event)?;
                            }
                            Ok(())
                        });
                    } else {
                        ctx.edit_desk(move |tx| {
                            for (at, text) in events {
                                let event = DeskEvent { id: random_token::<9>(), at, text, kind: "event".into(), source: String::new() };
                                edit::put_desk_event(tx, &event)?;
                            }
                            Ok(())
                        });
                    }
                    pasted.set(String::new());
                }
            >
                {move || format!("Add {} events", preview.with(|p| p.events.len()))}
            </button>
        </details>
    }
}
