//! Bar charts drawn as SVG: one group of bars per retro, a series per measure, read at a glance
//! (each bar's value is in its tooltip and the chart's description for screen readers).

use leptos::prelude::*;

/// One measure across the retros: a value per retro, `None` where there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: &'static str,
    /// The CSS class that colours its bars.
    pub class: &'static str,
    pub values: Vec<Option<f64>>,
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 66.0;
const BOTTOM: f64 = 30.0;

/// A bar chart of `series` over the retros named by `labels`, on a scale of 0 to `max`, values
/// shown by `show`.
#[component]
pub fn BarChart(
    id: &'static str,
    title: &'static str,
    labels: Vec<String>,
    series: Vec<Series>,
    max: f64,
    show: fn(f64) -> String,
    /// What to say when no retro has a value.
    #[prop(optional)]
    empty: &'static str,
) -> impl IntoView {
    let nothing = series.iter().all(|s| s.values.iter().all(Option::is_none));
    let count = labels.len().max(1) as f64;
    let slot = (WIDTH - LEFT) / count;
    let bar = (slot * 0.8 / series.len().max(1) as f64).min(28.0);
    let scale = |v: f64| (v / max).clamp(0.0, 1.0) * (HEIGHT - BOTTOM - 8.0);
    let description = series
        .iter()
        .map(|s| {
            let values: Vec<String> = labels
                .iter()
                .zip(&s.values)
                .map(|(label, v)| format!("{label}: {}", v.map_or("none".to_owned(), show)))
                .collect();
            format!("{}: {}", s.name, values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(". ");
    let mut bars = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        for (k, s) in series.iter().enumerate() {
            let Some(Some(value)) = s.values.get(i) else { continue };
            let h = scale(*value).max(1.5);
            let x = LEFT + slot * i as f64 + (slot - bar * series.len() as f64) / 2.0 + bar * k as f64;
            let y = HEIGHT - BOTTOM - h;
            bars.push(view! {
                <rect class=format!("bar s-{}", s.class) x=x y=y width=bar height=h>
                    <title>{format!("{label} — {}: {}", s.name, show(*value))}</title>
                </rect>
            });
        }
    }
    let every = (labels.len() / 12).max(1);
    let ticks: Vec<_> = labels
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, _)| {
            let x = LEFT + slot * i as f64 + slot / 2.0;
            view! {
                <text class="tick" x=x y=HEIGHT - 6.0 text-anchor="middle">
                    {(i + 1).to_string()}
                </text>
            }
        })
        .collect();
    let legend =
        series.iter().map(|s| view! { <span class=format!("legend s-{}", s.class)>{s.name}</span> }).collect_view();
    view! {
        <figure class="chart" id=id>
            <figcaption>{title} " " {legend}</figcaption>
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=format!("{title}. {description}")>
                <line class="axis" x1=LEFT y1=HEIGHT - BOTTOM x2=WIDTH y2=HEIGHT - BOTTOM></line>
                <text class="tick" x=LEFT - 6.0 y=20.0 text-anchor="end">
                    {show(max)}
                </text>
                <text class="tick" x=LEFT - 6.0 y=HEIGHT - BOTTOM text-anchor="end">
                    {show(0.0)}
                </text>
                {bars}
                {ticks}
            </svg>
            {(nothing && !empty.is_empty()).then(|| view! { <p class="muted chart-empty">{empty}</p> })}
        </figure>
    }
}
