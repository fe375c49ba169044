//! The incident's facts on a postmortem board: severity, impact, services, tags, links, its time
//! zone and its milestones, edited by anyone until Done, and the durations they give with what
//! each means. Times are entered and shown in the viewer's zone, and shown in the incident's too.

use hindsight_shared::edit;
use hindsight_shared::incident::{
    self, MAX_IMPACT_CHARS, MAX_LINKS_CHARS, MAX_LIST_CHARS, MAX_ZONE_CHARS, Milestone, SEVERITIES,
};
use hindsight_shared::schema::Phase;
use leptos::prelude::*;
use wasm_bindgen::{JsCast, JsValue};

use super::Ctx;
use super::shared_input::SharedInput;

/// The browser's time zone (an IANA name), as `Intl` resolves it.
pub fn viewer_zone() -> String {
    let format = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new());
    js_sys::Reflect::get(&format.resolved_options(), &"timeZone".into())
        .ok()
        .and_then(|z| z.as_string())
        .unwrap_or_default()
}

/// A time as `30 Nov 2026, 15:02` in `zone`, or `None` if the browser does not know the zone.
/// (Through `Reflect`, so an unknown zone is an error here rather than a thrown exception.)
fn in_zone(unix: i64, zone: &str) -> Option<String> {
    let intl = js_sys::Reflect::get(&js_sys::global(), &"Intl".into()).ok()?;
    let constructor: js_sys::Function = js_sys::Reflect::get(&intl, &"DateTimeFormat".into()).ok()?.dyn_into().ok()?;
    let options = js_sys::Object::new();
    for (key, value) in [("timeZone", zone), ("dateStyle", "medium"), ("timeStyle", "short")] {
        js_sys::Reflect::set(&options, &key.into(), &value.into()).ok()?;
    }
    let args = js_sys::Array::of2(&"en-GB".into(), &options);
    let format = js_sys::Reflect::construct(&constructor, &args).ok()?;
    let call: js_sys::Function = js_sys::Reflect::get(&format, &"format".into()).ok()?.dyn_into().ok()?;
    call.call1(&format, &JsValue::from_f64(unix as f64 * 1000.0)).ok()?.as_string()
}

/// An RFC 3339 time as a `datetime-local` input's value in the viewer's zone.
fn to_local_input(rfc: &str) -> String {
    let Some(time) = incident::parse_time(rfc) else { return String::new() };
    let d = js_sys::Date::new(&JsValue::from_f64(time.unix as f64 * 1000.0));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes()
    )
}

/// A `datetime-local` value (the viewer's zone) as RFC 3339 with the viewer's offset then.
fn from_local_input(value: &str) -> Option<String> {
    let d = js_sys::Date::new(&JsValue::from_str(value));
    if d.get_time().is_nan() || value.len() != 16 {
        return None;
    }
    Some(incident::format_time((d.get_time() / 1000.0) as i64, -(d.get_timezone_offset() as i32)))
}

#[component]
pub fn IncidentFacts() -> impl IntoView {
    let ctx = Ctx::get();
    let facts = ctx.part(|b| b.incident.clone());
    let editable = move || ctx.phase() != Phase::Done;
    let field = move |read: fn(&incident::Incident) -> String| Signal::derive(move || facts.with(read));
    let save = move |name: &'static str| {
        Callback::new(move |value: String| ctx.edit_board(move |tx| edit::set_incident(tx, name, &value)))
    };
    let summary = move || {
        facts.with(|f| {
            let mut parts = vec!["Incident".to_owned()];
            if !f.severity.is_empty() {
                parts.push(f.severity.clone());
            }
            if let Some(resolve) = f.figures().get(3).and_then(|g| g.seconds) {
                parts.push(format!("resolved in {}", incident::duration(resolve)))
            }
            parts.join(" · ")
        })
    };
    let zone = field(|f| f.zone.clone());
    // The facilitator, who holds the key, sees the alert webhook's URL (a capability).
    let hold = use_context::<super::KeyHold>();
    let webhook = move || {
        let hold = hold.filter(|_| ctx.is_facilitator())?;
        let key = hold.key.get()?;
        let origin = window().location().origin().ok()?;
        let token = hindsight_shared::alerts::token_of_key(&key);
        Some(format!("{origin}{}", hindsight_shared::api::alerts(hold.board, &token)))
    };
    let links_shown = Signal::derive(move || facts.with(|f| f.links.lines().collect::<Vec<_>>().join(" ")));
    view! {
        // Open while people write and reveal; from grouping on, its summary line is enough until
        // someone opens it.
        <details class="card incident" id="incident" prop:open=move || ctx.phase() < Phase::Group>
            <summary id="incident-summary">{summary}</summary>
            <div class="incident-grid">
                <label class="incident-field">
                    <span>"Severity"</span>
                    <select
                        id="incident-severity"
                        disabled=move || !editable()
                        on:change=move |ev| {
                            let value = event_target_value(&ev);
                            ctx.edit_board(move |tx| edit::set_incident(tx, "severity", &value));
                        }
                    >
                        <option value="" selected=move || facts.with(|f| f.severity.is_empty())>
                            "—"
                        </option>
                        {SEVERITIES
                            .iter()
                            .map(|s| {
                                view! {
                                    <option value=*s selected=move || facts.with(|f| f.severity == *s)>
                                        {*s}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <div class="incident-field wide">
                    <span id="incident-impact-label">"Impact"</span>
                    <SharedInput
                        value=field(|f| f.impact.clone())
                        save=save("impact")
                        class="incident-input"
                        placeholder="Who was affected, how, how many"
                        label="Impact"
                        maxlength=MAX_IMPACT_CHARS
                    />
                </div>
                <div class="incident-field">
                    <span>"Services"</span>
                    <SharedInput
                        value=field(|f| f.services.clone())
                        save=save("services")
                        class="incident-input"
                        placeholder="checkout, payments"
                        label="Affected services"
                        maxlength=MAX_LIST_CHARS
                    />
                </div>
                <div class="incident-field">
                    <span>"Tags"</span>
                    <SharedInput
                        value=field(|f| f.tags.clone())
                        save=save("tags")
                        class="incident-input"
                        placeholder="database, config"
                        label="Tags"
                        maxlength=MAX_LIST_CHARS
                    />
                </div>
                <div class="incident-field wide">
                    <span>"Links"</span>
                    <SharedInput
                        value=links_shown
                        save=Callback::new(move |value: String| {
                            let lines = value.split_whitespace().collect::<Vec<_>>().join("\n");
                            ctx.edit_board(move |tx| edit::set_incident(tx, "links", &lines));
                        })
                        class="incident-input"
                        placeholder="https://tickets/INC-42 https://dashboards/…"
                        label="Links (the ticket, dashboards, pull requests), separated by spaces"
                        maxlength=MAX_LINKS_CHARS
                    />
                </div>
                <div class="incident-field">
                    <span>"Time zone"</span>
                    <SharedInput
                        value=zone
                        save=save("zone")
                        class="incident-input"
                        placeholder=viewer_zone()
                        label="The incident's time zone"
                        maxlength=MAX_ZONE_CHARS
                    />
                </div>
            </div>
            <ol class="milestones">
                {Milestone::ALL
                    .into_iter()
                    .map(|m| {
                        let value = move || facts.with(|f| to_local_input(f.milestone(m)));
                        let elsewhere = move || {
                            facts.with(|f| {
                                let at = f.at(m)?;
                                let zone = if f.zone.is_empty() { return None } else { f.zone.clone() };
                                (zone != viewer_zone()).then(|| in_zone(at.unix, &zone).map(|t| format!("{t} {zone}")))?
                            })
                        };
                        view! {
                            <li class="milestone" data-milestone=m.key()>
                                <label>
                                    <span>{m.title()}</span>
                                    <input
                                        type="datetime-local"
                                        class="milestone-input"
                                        id=format!("milestone-{}", m.key())
                                        disabled=move || !editable()
                                        prop:value=value
                                        on:change=move |ev| {
                                            let typed = event_target_value(&ev);
                                            let rfc = if typed.is_empty() { Some(String::new()) } else { from_local_input(&typed) };
                                            if let Some(rfc) = rfc {
                                                ctx.edit_board(move |tx| edit::set_incident(tx, m.key(), &rfc));
                                            }
                                        }
                                    />
                                </label>
                                <span class="muted milestone-zone">{elsewhere}</span>
                            </li>
                        }
                    })
                    .collect_view()}
            </ol>
            {move || {
                webhook()
                    .map(|url| {
                        view! {
                            <p class="muted alert-webhook">
                                "Alerts from Alertmanager or Grafana join the timeline when sent to "
                                <code id="alert-webhook">{url}</code>
                                " (keep it secret: it lets its holder add alerts)."
                            </p>
                        }
                    })
            }}
            <dl class="incident-figures" id="incident-figures">
                {move || {
                    facts
                        .with(|f| f.figures())
                        .into_iter()
                        .map(|figure| {
                            view! {
                                <div class="figure" data-figure=figure.name>
                                    <dt>{figure.name}</dt>
                                    <dd>
                                        <strong class="figure-value">{figure.seconds.map_or("—".to_owned(), incident::duration)}</strong>
                                        <span class="muted">{figure.definition}</span>
                                    </dd>
                                </div>
                            }
                        })
                        .collect_view()
                }}
            </dl>
        </details>
    }
}
