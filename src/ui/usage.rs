//! The Usage Logs tab of repository, organization and user pages: a bar chart of the records
//! per day over the last [`DAYS`] days (server-rendered SVG, no script or inline style) and a
//! table of the records, newest first, filterable by kind and paged with the API's position
//! tokens. Who may see it is decided by the page (repository and organization admins, the user
//! themselves), as in the API.

use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{query_escape, time};
use super::PageError;
use crate::app::AppState;
use crate::metadata::usage_log::{LogQuery, LogScope};

/// Days the chart and the table cover.
pub const DAYS: i64 = 30;

/// Records a page of the table holds.
const PAGE: u32 = 50;

const DAY: i64 = 86_400_000;

/// The tab's query parameters.
#[derive(Debug, Default, Deserialize)]
pub struct LogsQuery {
    pub kind: Option<String>,
    pub next_page: Option<String>,
}

/// The tab's content for the records of `scope`; `base` is the page's URL with its `tab`
/// parameter (`...?tab=logs`).
pub async fn section(
    state: &AppState,
    scope: LogScope<'_>,
    base: &str,
    q: &LogsQuery,
) -> Result<Markup, PageError> {
    let now = crate::metadata::now_millis();
    let today = now.div_euclid(DAY);
    let start = (today - DAYS + 1) * DAY;
    let end = now + 1;
    let kind = q
        .kind
        .as_deref()
        .filter(|k| !k.is_empty() && k.len() <= 64 && !k.contains('\0'));
    let after = match q.next_page.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => Some(
            crate::usage_log::read_position(token)
                .ok_or_else(|| PageError::BadRequest("invalid page token".into()))?,
        ),
        None => None,
    };
    let store = state.usage.store();
    let counts = store.aggregate_usage_logs(scope, start, end).await?;
    let mut rows = store
        .usage_logs(&LogQuery {
            scope,
            start,
            end,
            after,
            kind,
            performer: None,
            limit: PAGE + 1,
        })
        .await?;
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let next = more
        .then(|| rows.last())
        .flatten()
        .map(|(id, r)| crate::usage_log::position_token(r.at, *id));

    let mut per_day = vec![0u64; DAYS as usize];
    let mut kinds: Vec<&str> = Vec::new();
    for c in &counts {
        if kind.is_none_or(|k| k == c.kind) {
            if let Some(slot) = usize::try_from(c.day - (today - DAYS + 1))
                .ok()
                .and_then(|i| per_day.get_mut(i))
            {
                *slot += c.count;
            }
        }
        if !kinds.contains(&c.kind.as_str()) {
            kinds.push(&c.kind);
        }
    }
    kinds.sort_unstable();
    let total: u64 = per_day.iter().sum();
    let highest = per_day.iter().copied().max().unwrap_or(0).max(1);
    let filtered = |k: Option<&str>| match k {
        Some(k) => format!("{base}&kind={}", query_escape(k)),
        None => base.to_string(),
    };
    let (width, height, bar) = (DAYS * 12, 80i64, 10i64);
    Ok(html! {
        section.panel.usage-logs {
            h2 { "Usage logs" }
            p.hint { (total) " records in the last " (DAYS) " days"
                @if let Some(k) = kind { " of kind " code { (k) } } "." }
            figure.usage-chart {
                svg role="img" aria-labelledby="usage-chart-title" viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) {
                    title id="usage-chart-title" { "Records per day over the last " (DAYS) " days" }
                    @for (i, n) in per_day.iter().enumerate() {
                        @let h = if *n == 0 { 0 } else { ((*n as i64) * (height - 2) / highest as i64).max(2) };
                        rect.usage-bar x=(i as i64 * 12 + 1) y=(height - h) width=(bar) height=(h) {
                            title { (crate::api::dates::rfc3339(((today - DAYS + 1 + i as i64) * 86_400) as u64)[..10]) ": " (n) }
                        }
                    }
                }
                figcaption.hint { "Records per day (UTC), oldest on the left." }
            }
            form.form-row.usage-filter method="get" action=(base.split('?').next().unwrap_or(base)) {
                input type="hidden" name="tab" value="logs";
                label for="usage-kind" { "Kind" }
                select id="usage-kind" name="kind" {
                    option value="" selected[kind.is_none()] { "all kinds" }
                    @for k in &kinds {
                        option value=(k) selected[kind == Some(*k)] { (k) }
                    }
                }
                button.secondary type="submit" { "Filter" }
                @if kind.is_some() { " " a href=(filtered(None)) { "Show all" } }
            }
            div.table-wrap {
                table.usage-table {
                    caption.sr-only { "Usage log records, newest first" }
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Kind" } th scope="col" { "Performer" } th scope="col" { "Repository" } th scope="col" { "Address" } th scope="col" { "Details" } } }
                    tbody {
                        @if rows.is_empty() { tr { td.empty colspan="6" { "No records." } } }
                        @for (_, r) in &rows {
                            tr.usage-record data-kind=(r.kind) {
                                td { (time(r.at)) }
                                td { code { (r.kind) } }
                                td { @match &r.performer { Some(p) => (p), None => span.muted { "anonymous" } } }
                                td { @if let Some(repo) = &r.repository { a href={ "/repository/" (repo) } { (repo) } } }
                                td { @if let Some(ip) = &r.ip { (ip) } }
                                td.details { (details(&r.metadata)) }
                            }
                        }
                    }
                }
            }
            @if let Some(token) = next {
                p { a.older href={ (filtered(kind)) "&next_page=" (token) } { "Older records" } }
            }
        }
    })
}

/// A record's details as `key: value` pairs (the repository's name parts left out, the table
/// shows them).
fn details(metadata: &str) -> Markup {
    let value: serde_json::Value = serde_json::from_str(metadata).unwrap_or_default();
    let pairs: Vec<(String, String)> = value
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "namespace" | "repo"))
                .map(|(k, v)| {
                    let v = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default();
    html! {
        @for (i, (k, v)) in pairs.iter().enumerate() {
            @if i > 0 { ", " }
            span.muted { (k) ": " } (v)
        }
    }
}
