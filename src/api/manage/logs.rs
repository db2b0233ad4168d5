//! Quay's usage-log API: `GET .../logs` and `GET .../aggregatelogs` on a repository
//! (`/api/v1/repository/{ns}/{repo}`, repository admins), an organization
//! (`/api/v1/organization/{org}`, its admins), the caller (`/api/v1/user`: what happened in
//! their namespace or what they did) and the whole registry (`/api/v1/superuser`, superusers).
//!
//! Both take `starttime` and `endtime` as Quay does (`MM/DD/YYYY`, UTC, the end day included;
//! by default the week up to now). `logs` answers newest first, [`PAGE`] records a page, with
//! an opaque `next_page` token while more remain; pages are cut by `(time, id)`, so paging
//! returns every record once even while new ones arrive. `aggregatelogs` counts per kind and
//! day. Berth also takes `kind` (one kind only) and `performer` (one account only) on both.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{ApiCaller, ApiPath, ManageError};
use crate::api::dates::http_date;
use crate::app::AppState;
use crate::metadata::usage_log::{LogQuery, LogScope, UsageLogRecord};

/// Records a page holds (Quay's `LOGS_PER_PAGE`).
pub const PAGE: u32 = 20;

const DAY: i64 = 86_400_000;

/// Days a listing covers when `starttime` is not given.
const DEFAULT_DAYS: i64 = 7;

/// The query parameters of both endpoints.
#[derive(Debug, Default)]
pub struct LogParams {
    starttime: Option<String>,
    endtime: Option<String>,
    next_page: Option<String>,
    kind: Option<String>,
    performer: Option<String>,
}

impl LogParams {
    /// The parameters of a query string (the first of a repeated one; unknown ones ignored).
    pub fn parse(query: Option<&str>) -> LogParams {
        let pairs: Vec<(String, String)> = query
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let param = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        LogParams {
            starttime: param("starttime"),
            endtime: param("endtime"),
            next_page: param("next_page"),
            kind: param("kind"),
            performer: param("performer"),
        }
    }
}

/// Days since the Unix epoch of a civil date (Howard Hinnant's days-from-civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Quay's `MM/DD/YYYY` as the first millisecond of that day (UTC).
fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.trim().split('/');
    let mut number = |digits: std::ops::RangeInclusive<usize>| {
        let part = parts.next()?;
        (digits.contains(&part.len()) && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<i64>().ok())
            .flatten()
    };
    let (m, d, y) = (number(1..=2)?, number(1..=2)?, number(4..=4)?);
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1970..=9999).contains(&y) {
        return None;
    }
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if d < 1 || d > days_in_month[(m - 1) as usize] {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY)
}

/// The `[start, end)` window the parameters name, in milliseconds.
fn window(params: &LogParams) -> Result<(i64, i64), ManageError> {
    let bad = |key: &str| ManageError::BadRequest(format!("{key} must be a date as MM/DD/YYYY"));
    let end = match params.endtime.as_deref() {
        Some(t) => parse_day(t).ok_or_else(|| bad("endtime"))? + DAY,
        None => crate::metadata::now_millis() + 1,
    };
    let start = match params.starttime.as_deref() {
        Some(t) => parse_day(t).ok_or_else(|| bad("starttime"))?,
        None => end - DEFAULT_DAYS * DAY,
    };
    if start >= end {
        return Err(ManageError::BadRequest(
            "starttime must not be after endtime".into(),
        ));
    }
    Ok((start, end))
}

fn read_page_token(token: &str) -> Result<(i64, i64), ManageError> {
    crate::usage_log::read_position(token)
        .ok_or_else(|| ManageError::BadRequest("invalid next_page token".into()))
}

/// A kind or performer filter: at most 256 bytes, no NUL (which PostgreSQL refuses).
fn filter<'a>(key: &str, value: Option<&'a str>) -> Result<Option<&'a str>, ManageError> {
    match value {
        Some(v) if v.len() > 256 || v.contains('\0') => Err(ManageError::BadRequest(format!(
            "{key} is not a valid name"
        ))),
        Some("") | None => Ok(None),
        Some(v) => Ok(Some(v)),
    }
}

/// Quay's view of an account named in a record.
fn account_view(name: &str) -> Value {
    let is_robot = name.contains('+');
    json!({
        "kind": "user",
        "name": name,
        "is_robot": is_robot,
        "avatar": avatar(name, if is_robot { "robot" } else { "user" }),
    })
}

/// Quay's avatar object: a colour picked from the name's hash.
fn avatar(name: &str, kind: &str) -> Value {
    use sha2::Digest as _;
    const COLORS: [&str; 8] = [
        "#969696", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    ];
    let hash = hex::encode(sha2::Sha256::digest(name.as_bytes()));
    let color = COLORS[usize::from(hash.as_bytes()[0]) % COLORS.len()];
    json!({ "name": name, "hash": hash, "color": color, "kind": kind })
}

/// One record as Quay's API shows it.
pub fn log_view(record: &UsageLogRecord) -> Value {
    let mut metadata: Value = serde_json::from_str(&record.metadata).unwrap_or_else(|_| json!({}));
    // Identical pulls within one batch are one record; `count` says how many it stands for.
    if record.occurrences > 1 {
        metadata["count"] = json!(record.occurrences);
    }
    let mut view = json!({
        "kind": record.kind,
        "metadata": metadata,
        "ip": record.ip,
        "datetime": http_date(record.at),
    });
    if let Some(performer) = &record.performer {
        view["performer"] = account_view(performer);
    }
    if let Some(ns) = &record.namespace {
        view["namespace"] = json!({ "kind": "user", "name": ns, "avatar": avatar(ns, "user") });
    }
    view
}

/// Answers `logs` for `scope`.
async fn logs(
    state: &AppState,
    scope: LogScope<'_>,
    params: &LogParams,
) -> Result<Response, ManageError> {
    let (start, end) = window(params)?;
    let after = params
        .next_page
        .as_deref()
        .map(read_page_token)
        .transpose()?;
    let query = LogQuery {
        scope,
        start,
        end,
        after,
        kind: filter("kind", params.kind.as_deref())?,
        performer: filter("performer", params.performer.as_deref())?,
        limit: PAGE + 1,
    };
    let mut rows = state.usage.store().usage_logs(&query).await?;
    let more = rows.len() > PAGE as usize;
    rows.truncate(PAGE as usize);
    let mut body = json!({
        "start_time": http_date(start),
        "end_time": http_date(end),
        "logs": rows.iter().map(|(_, r)| log_view(r)).collect::<Vec<_>>(),
    });
    if more {
        if let Some((id, last)) = rows.last() {
            body["next_page"] = json!(crate::usage_log::position_token(last.at, *id));
        }
    }
    Ok(Json(body).into_response())
}

/// Answers `aggregatelogs` for `scope`.
async fn aggregate(
    state: &AppState,
    scope: LogScope<'_>,
    params: &LogParams,
) -> Result<Response, ManageError> {
    let (start, end) = window(params)?;
    let kind = filter("kind", params.kind.as_deref())?;
    let counts = state
        .usage
        .store()
        .aggregate_usage_logs(scope, start, end)
        .await?;
    let aggregated: Vec<Value> = counts
        .iter()
        .filter(|c| kind.is_none_or(|k| k == c.kind))
        .map(|c| json!({ "kind": c.kind, "count": c.count, "datetime": http_date(c.day * DAY) }))
        .collect();
    Ok(Json(json!({ "aggregated": aggregated })).into_response())
}

/// `logs` (`aggregate` false) or `aggregatelogs` of a repository the caller administers; the
/// repository module checks the right before calling.
pub async fn repository(
    state: &AppState,
    repo: &oci::RepoName,
    aggregate_only: bool,
    query: Option<&str>,
) -> Result<Response, ManageError> {
    let params = LogParams::parse(query);
    let scope = LogScope::Repository(repo.as_str());
    if aggregate_only {
        aggregate(state, scope, &params).await
    } else {
        logs(state, scope, &params).await
    }
}

/// Checks that the caller administers organization `org`.
async fn org_admin(state: &AppState, caller: &ApiCaller, org: &str) -> Result<(), ManageError> {
    super::organization::org_admin(state, caller, org)
        .await
        .map(|_| ())
}

/// `GET /api/v1/organization/{org}/logs`.
pub async fn organization_logs(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ManageError> {
    org_admin(&state, &caller, &org).await?;
    let params = LogParams::parse(query.as_deref());
    logs(&state, LogScope::Namespace(&org), &params).await
}

/// `GET /api/v1/organization/{org}/aggregatelogs`.
pub async fn organization_aggregate(
    State(state): State<AppState>,
    caller: ApiCaller,
    ApiPath(org): ApiPath<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ManageError> {
    org_admin(&state, &caller, &org).await?;
    let params = LogParams::parse(query.as_deref());
    aggregate(&state, LogScope::Namespace(&org), &params).await
}

/// `GET /api/v1/user/logs`: what happened in the caller's namespace or what they did.
pub async fn user_logs(
    State(state): State<AppState>,
    caller: ApiCaller,
    RawQuery(query): RawQuery,
) -> Result<Response, ManageError> {
    let who = caller.required()?;
    let params = LogParams::parse(query.as_deref());
    logs(&state, LogScope::Account(&who.name), &params).await
}

/// `GET /api/v1/user/aggregatelogs`.
pub async fn user_aggregate(
    State(state): State<AppState>,
    caller: ApiCaller,
    RawQuery(query): RawQuery,
) -> Result<Response, ManageError> {
    let who = caller.required()?;
    let params = LogParams::parse(query.as_deref());
    aggregate(&state, LogScope::Account(&who.name), &params).await
}

fn superuser(state: &AppState, caller: &ApiCaller) -> Result<(), ManageError> {
    if state.auth.is_superuser(caller.required()?) {
        Ok(())
    } else {
        Err(ManageError::Forbidden)
    }
}

/// `GET /api/v1/superuser/logs`: every record.
pub async fn superuser_logs(
    State(state): State<AppState>,
    caller: ApiCaller,
    RawQuery(query): RawQuery,
) -> Result<Response, ManageError> {
    superuser(&state, &caller)?;
    let params = LogParams::parse(query.as_deref());
    logs(&state, LogScope::All, &params).await
}

/// `GET /api/v1/superuser/aggregatelogs`.
pub async fn superuser_aggregate(
    State(state): State<AppState>,
    caller: ApiCaller,
    RawQuery(query): RawQuery,
) -> Result<Response, ManageError> {
    superuser(&state, &caller)?;
    let params = LogParams::parse(query.as_deref());
    aggregate(&state, LogScope::All, &params).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_parse_as_quay_writes_them() {
        assert_eq!(parse_day("01/01/1970"), Some(0));
        assert_eq!(parse_day("1/2/1970"), Some(DAY));
        assert_eq!(
            parse_day("02/29/2000"),
            Some(days_from_civil(2000, 2, 29) * DAY)
        );
        assert_eq!(
            http_date(parse_day("12/07/2026").unwrap()),
            "Mon, 07 Dec 2026 00:00:00 -0000"
        );
        for bad in [
            "",
            "2026-12-07",
            "13/01/2026",
            "02/30/2026",
            "02/29/2025",
            "1/1/26",
            "1/1/2026/1",
            "+1/1/2026",
            "00/10/2026",
        ] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn page_tokens_round_trip_and_refuse_garbage() {
        assert_eq!(
            read_page_token(&crate::usage_log::position_token(1_700_000_000_123, 42)).unwrap(),
            (1_700_000_000_123, 42)
        );
        for bad in [
            "",
            "!!",
            "bm9wZQ",
            &crate::usage_log::position_token(1, 2)[..3],
        ] {
            assert!(read_page_token(bad).is_err(), "{bad}");
        }
    }
}
