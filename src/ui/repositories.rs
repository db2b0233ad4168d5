//! `/repository/`: the namespaces and repositories the visitor can see.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{icon, page, time};
use super::session::Viewer;
use super::PageError;
use crate::app::AppState;
use crate::metadata::accounts::{AccountKind, RepositorySummary};

/// Repositories the visitor may pull, optionally of one namespace and matching `filter`.
/// The database selects them by the registry's own pull rule (see `Auth::reader`).
pub(super) async fn visible(
    state: &AppState,
    viewer: &Viewer,
    namespace: Option<&str>,
    filter: Option<&str>,
) -> Result<Vec<RepositorySummary>, PageError> {
    let reader = crate::auth::Auth::reader(viewer.identity.as_ref());
    Ok(state
        .auth
        .accounts()
        .repository_summaries(reader, namespace, filter)
        .await?)
}

/// The repositories table.
pub(super) fn table(repos: &[RepositorySummary], show_namespace: bool) -> Markup {
    html! {
        div.table-wrap {
            table.repositories {
                thead { tr {
                    th { "Repository" }
                    th { "Visibility" }
                    th.num { "Tags" }
                    th { "Last pushed" }
                    th.opt { "Description" }
                } }
                tbody {
                    @for repo in repos {
                        @let name = repo.name.as_str();
                        @let shown = if show_namespace { name } else { name.split_once('/').map_or(name, |(_, r)| r) };
                        tr.repo-row data-repo=(name) {
                            td.repo-name { a href={ "/repository/" (name) "?tab=tags" } { (shown) } }
                            td.visibility {
                                @if repo.public { span.pill.pill-public { (icon("public")) "public" } }
                                @else { span.pill.pill-private { (icon("lock")) "private" } }
                            }
                            td.num.tag-count { (repo.tag_count) }
                            td.last-pushed {
                                @match repo.last_modified {
                                    Some(at) => (time(at)),
                                    None => span.muted { "never" },
                                }
                            }
                            td.opt.description { (repo.description) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    filter: Option<String>,
}

/// `GET /repository/`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let filter = q
        .filter
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty() && f.len() <= 256);
    let repos = visible(&state, &viewer, None, filter).await?;
    let mut by_namespace: BTreeMap<String, Vec<RepositorySummary>> = BTreeMap::new();
    // The visitor's own namespaces are listed even when they hold nothing yet.
    if let (Some(who), None) = (&viewer.identity, filter) {
        if who.kind == AccountKind::User {
            by_namespace.entry(who.name.clone()).or_default();
        }
        let accounts = state.auth.accounts();
        for org in accounts.list_accounts(AccountKind::Organization).await? {
            let member = who.superuser
                || accounts
                    .organization_members(&org.name)
                    .await?
                    .iter()
                    .any(|m| m.id == who.id);
            if member {
                by_namespace.entry(org.name.clone()).or_default();
            }
        }
    }
    for repo in repos {
        by_namespace
            .entry(repo.name.namespace().to_string())
            .or_default()
            .push(repo);
    }
    let accounts = state.auth.accounts();
    let mut kinds = BTreeMap::new();
    for ns in by_namespace.keys() {
        let kind = accounts.account(ns).await?.map(|a| a.kind);
        kinds.insert(ns.clone(), kind);
    }
    let body = html! {
        div.page-head {
            div {
                h1 { "Repositories" }
                p.sub {
                    @if viewer.identity.is_some() { "Repositories you can read, by namespace." }
                    @else { "Public repositories. Sign in to see the private ones you have access to." }
                }
            }
            form.repo-filter method="get" action="/repository/" role="search" {
                input type="search" name="filter" value=[filter] placeholder="Filter by name" aria-label="Filter repositories by name";
                button.secondary type="submit" { "Filter" }
            }
        }
        @if by_namespace.is_empty() {
            div.panel.empty {
                @if filter.is_some() { "No repository you can see matches this filter." }
                @else { "No repositories to show yet." }
            }
        }
        @for (ns, repos) in &by_namespace {
            @let kind = kinds.get(ns).copied().flatten();
            section.namespace data-namespace=(ns) {
                h2 {
                    @match kind {
                        Some(AccountKind::Organization) => {
                            (icon("team")) a href={ "/organization/" (ns) } { (ns) }
                        }
                        Some(AccountKind::User) => {
                            (icon("user")) a href={ "/user/" (ns) } { (ns) }
                        }
                        _ => { (icon("team")) (ns) }
                    }
                    span.pill { (repos.len()) @if repos.len() == 1 { " repository" } @else { " repositories" } }
                }
                @if repos.is_empty() {
                    div.panel.empty { "No repositories yet. Push one: " code { "podman push IMAGE " (viewer.host) "/" (ns) "/NAME:TAG" } }
                } @else {
                    (table(repos, true))
                }
            }
        }
    };
    Ok(page(&viewer, "Repositories", body))
}
