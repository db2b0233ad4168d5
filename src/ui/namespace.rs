//! `/organization/<org>` and `/user/<name>`: a namespace's repositories, and for its members
//! the teams, members and robot accounts; a user's own API tokens are on the settings tab of
//! their page ([`super::tokens`]).

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{icon, page};
use super::repositories;
use super::session::{Flash, Viewer};
use super::{see_other, tokens, FormData, PageError};
use crate::app::AppState;
use crate::auth::RobotError;
use crate::metadata::accounts::{Account, AccountKind};
use crate::metadata::trust::TrustScope;

/// The namespace account, if it exists and is of `kind`.
async fn namespace(state: &AppState, name: &str, kind: AccountKind) -> Result<Account, PageError> {
    match state.auth.accounts().account(name).await? {
        Some(a) if a.kind == kind => Ok(a),
        _ => Err(PageError::NotFound),
    }
}

fn robots_section(viewer: &Viewer, action: &str, robots: &[Account], admin: bool) -> maud::Markup {
    html! {
        section.panel.robots {
            h2 { (icon("robot")) " Robot accounts" }
            p.hint { "Robots log in to registry clients with their token; grant them access per repository." }
            @if robots.is_empty() { p.muted { "No robot accounts." } }
            @else {
                ul.plain {
                    @for r in robots { li.robot data-robot=(r.name) { (icon("robot")) " " code { (r.name) } } }
                }
            }
            @if admin {
                form.create-robot.form-row method="post" action=(action) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="action" value="create-robot";
                    input type="text" name="name" placeholder="robot name (a-z, 0-9, _)" required pattern="[a-z0-9_]{1,64}" aria-label="Robot name";
                    button.primary type="submit" { "Create robot account" }
                }
            }
        }
    }
}

/// The tabs of an organization page its admins see.
fn org_tabs(org: &str, active: &str) -> maud::Markup {
    html! {
        nav.tabs {
            a.active[active == "overview"] href={ "/organization/" (org) } { "Overview" }
            a.active[active == "logs"] href={ "/organization/" (org) "?tab=logs" } { "Usage Logs" }
            a.active[active == "settings"] href={ "/organization/" (org) "?tab=settings" } { "Settings" }
        }
    }
}

/// `GET /organization/{name}`.
pub async fn organization(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<UserTab>,
) -> Result<Response, PageError> {
    let org = namespace(&state, &name, AccountKind::Organization).await?;
    if query.tab.as_deref() == Some("logs") {
        // Organization admins only, as `/api/v1/organization/{org}/logs`.
        let base = format!("/organization/{}?tab=logs", org.name);
        match &viewer.identity {
            Some(who) if state.auth.is_namespace_admin(who, &org.name).await? => {}
            Some(_) => return Err(PageError::Forbidden),
            None => return Err(PageError::SignIn(base)),
        }
        let scope = crate::metadata::usage_log::LogScope::Namespace(&org.name);
        let section = super::usage::section(&state, scope, &base, &query.logs()).await?;
        let body = html! {
            div.page-head { div { h1 { (icon("team")) " " (org.name) } p.sub { "Organization" } } }
            (org_tabs(&org.name, "logs"))
            (section)
        };
        return Ok(page(&viewer, &format!("{} usage logs", org.name), body));
    }
    if query.tab.as_deref() == Some("settings") {
        // Trusted keys and the trust policy: organization admins (and superusers) only.
        let base = format!("/organization/{}?tab=settings", org.name);
        match &viewer.identity {
            Some(who) if state.auth.is_namespace_admin(who, &org.name).await? => {}
            Some(_) => return Err(PageError::Forbidden),
            None => return Err(PageError::SignIn(base)),
        }
        let action = format!("/organization/{}", org.name);
        let trust = super::trust::settings(
            super::trust::store(&state),
            &viewer,
            &TrustScope::Namespace(org.name.clone()),
            &action,
        )
        .await?;
        let body = html! {
            div.page-head { div { h1 { (icon("team")) " " (org.name) } p.sub { "Organization" } } }
            (org_tabs(&org.name, "settings"))
            (trust)
        };
        return Ok(page(&viewer, &format!("{} settings", org.name), body));
    }
    let accounts = state.auth.accounts();
    let repos = repositories::visible(&state, &viewer, Some(&org.name), None).await?;
    let members = accounts.organization_members(&org.name).await?;
    let (member, admin) = match &viewer.identity {
        Some(who) => (
            who.superuser || members.iter().any(|m| m.id == who.id),
            state.auth.is_namespace_admin(who, &org.name).await?,
        ),
        None => (false, false),
    };
    if !member && repos.is_empty() {
        // Organizations are not secret, but one with nothing visible has nothing to show.
        return Err(PageError::NotFound);
    }
    let mut teams = Vec::new();
    let mut robots = Vec::new();
    if member {
        for team in accounts.list_teams(&org.name).await? {
            let people = accounts.team_members(&org.name, &team.name).await?;
            teams.push((team, people));
        }
        robots = accounts.list_robots(&org.name).await?;
    }
    // A proxy cache says what it caches and how long a cached tag is served unrevalidated.
    let proxy = if member {
        state.auth.proxy_cache_at(None, &org.name).await?
    } else {
        None
    };
    let action = format!("/organization/{}", org.name);
    let body = html! {
        div.page-head {
            div {
                h1 { (icon("team")) " " (org.name) }
                p.sub { "Organization" @if admin { " · you administer it" } }
            }
        }
        @if admin { (org_tabs(&org.name, "overview")) }
        @if let Some(proxy) = &proxy {
            section.panel.proxy-cache data-upstream=(proxy.upstream_registry) {
                h2 { "Proxy cache" }
                p {
                    "This organization is a proxy cache of " code { (proxy.upstream_registry) }
                    ": pulling " code { (org.name) "/<path>" } " serves " code { (proxy.upstream_registry) "/<path>" }
                    ", fetched on first pull and kept. Nothing can be pushed here."
                }
                p.muted {
                    "A cached tag is served without asking the upstream for "
                    (duration_words(proxy.expiration_s))
                    " after it was last confirmed; then it is revalidated, and while the upstream cannot be reached it is stale and its pulls fail. Tags not revalidated within that time are removed."
                }
            }
        }
        section.repositories {
            h2 { "Repositories" }
            @if repos.is_empty() { div.panel.empty { "No repositories you can see." } }
            @else { (repositories::table(&repos, false)) }
        }
        @if member {
            section.panel.members {
                h2 { (icon("user")) " Members" }
                @if members.is_empty() { p.muted { "No members." } }
                ul.plain {
                    @for m in &members {
                        li.member data-member=(m.name) {
                            (icon(if m.kind == AccountKind::Robot { "robot" } else { "user" })) " "
                            @if m.kind == AccountKind::User { a href={ "/user/" (m.name) } { (m.name) } } @else { code { (m.name) } }
                        }
                    }
                }
            }
            section.panel.teams {
                h2 { (icon("team")) " Teams" }
                div.table-wrap {
                    table {
                        thead { tr { th { "Team" } th { "Role" } th { "Members" } } }
                        tbody {
                            @for (team, people) in &teams {
                                tr.team data-team=(team.name) {
                                    td { strong { (team.name) } @if !team.description.is_empty() { br; span.hint { (team.description) } } }
                                    td { span.pill { (team.role.as_str()) } }
                                    td {
                                        @if people.is_empty() { span.muted { "none" } }
                                        @for (i, p) in people.iter().enumerate() { @if i > 0 { ", " } (p.name) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (robots_section(&viewer, &action, &robots, admin))
        }
    };
    Ok(page(&viewer, &org.name, body))
}

/// Which tab of a user or organization page (`?tab=settings`: the user's own API tokens;
/// `?tab=logs`: the usage logs, with their filter and page).
#[derive(Deserialize)]
pub struct UserTab {
    tab: Option<String>,
    kind: Option<String>,
    next_page: Option<String>,
}

impl UserTab {
    fn logs(&self) -> super::usage::LogsQuery {
        super::usage::LogsQuery {
            kind: self.kind.clone(),
            next_page: self.next_page.clone(),
        }
    }
}

/// `GET /user/{name}`.
pub async fn user(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(name): Path<String>,
    Query(query): Query<UserTab>,
) -> Result<Response, PageError> {
    let user = namespace(&state, &name, AccountKind::User).await?;
    if query.tab.as_deref() == Some("settings") {
        return tokens::settings_tab(&state, &viewer, &user).await;
    }
    if query.tab.as_deref() == Some("logs") {
        // A user's own usage logs, as `/api/v1/user/logs` gives them: only to that user.
        let base = format!("/user/{}?tab=logs", user.name);
        match &viewer.identity {
            Some(who) if who.id == user.id => {}
            Some(_) => return Err(PageError::Forbidden),
            None => return Err(PageError::SignIn(base)),
        }
        let scope = crate::metadata::usage_log::LogScope::Account(&user.name);
        let section = super::usage::section(&state, scope, &base, &query.logs()).await?;
        let body = html! {
            div.page-head { div { h1 { (icon("user")) " " (user.name) } p.sub { "User namespace" } } }
            (tokens::tabs(&user.name, "logs"))
            (section)
        };
        return Ok(page(&viewer, &format!("{} usage logs", user.name), body));
    }
    let own = viewer
        .identity
        .as_ref()
        .is_some_and(|who| who.id == user.id);
    let repos = repositories::visible(&state, &viewer, Some(&user.name), None).await?;
    let admin = match &viewer.identity {
        Some(who) => state.auth.is_namespace_admin(who, &user.name).await?,
        None => false,
    };
    if !admin && repos.is_empty() {
        return Err(PageError::NotFound);
    }
    let robots = if admin {
        state.auth.accounts().list_robots(&user.name).await?
    } else {
        Vec::new()
    };
    let action = format!("/user/{}", user.name);
    let body = html! {
        div.page-head {
            div {
                h1 { (icon("user")) " " (user.name) }
                p.sub { "User namespace" }
            }
        }
        @if own { (tokens::tabs(&user.name, "repositories")) }
        section.repositories {
            h2 { "Repositories" }
            @if repos.is_empty() { div.panel.empty { "No repositories yet." } }
            @else { (repositories::table(&repos, false)) }
        }
        @if admin { (robots_section(&viewer, &action, &robots, true)) }
    };
    Ok(page(&viewer, &user.name, body))
}

/// The answer to creating a robot: its token, on this page and nowhere else (berth keeps only
/// a hash of it, and a cookie is no place for a secret).
fn robot_created(viewer: &Viewer, back: &str, robot: &str, token: &str) -> Response {
    let body = html! {
        div.flash.success role="status" {
            p { "Created robot account " code { (robot) } ". Log in with it as: username " code { (robot) } ", password the token below." }
            div.secret-box {
                code.robot-token { (token) }
                button.copy type="button" data-copy=(token) { "Copy" }
            }
            p.hint { "This token is shown only once: berth keeps only a hash of it." }
        }
        p { a href=(back) { "Back to " (back.rsplit('/').next().unwrap_or(back)) } }
    };
    page(viewer, "Robot account created", body)
}

/// `POST /organization/{name}` and `POST /user/{name}`: create a robot account. The token is
/// shown on the page that answers (no redirect); errors go back to the namespace page.
pub async fn act(
    State(state): State<AppState>,
    mut viewer: Viewer,
    Path(name): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PageError> {
    let is_org = uri.path().starts_with("/organization/");
    let kind = if is_org {
        AccountKind::Organization
    } else {
        AccountKind::User
    };
    let back = format!(
        "{}/{}",
        if is_org { "/organization" } else { "/user" },
        name
    );
    let who = viewer.required(&back)?.clone();
    viewer.check_form(&headers, form.get("csrf"))?;
    let ns = namespace(&state, &name, kind).await?;
    let action = form.required("action")?;
    if !is_org && matches!(action, "create-token" | "revoke-token") {
        return tokens::act(&state, &mut viewer, &ns, action, &form).await;
    }
    if !state.auth.is_namespace_admin(&who, &ns.name).await? {
        return Err(PageError::Forbidden);
    }
    let flash = match action {
        "add-trust-key" | "delete-trust-key" | "trust-policy" if is_org => {
            let flash = super::trust::act(
                super::trust::store(&state),
                &state.usage,
                &viewer,
                &TrustScope::Namespace(ns.name.clone()),
                action,
                &form,
            )
            .await?;
            viewer.leave_flash(&flash);
            return Ok(see_other(&viewer, &format!("{back}?tab=settings")));
        }
        "create-robot" => {
            match state
                .auth
                .create_robot(&ns.name, form.required("name")?)
                .await
            {
                Ok((robot, token)) => {
                    tracing::info!(robot = %robot, by = %who.name, "robot account created");
                    state.usage.record(
                        viewer
                            .event("create_robot")
                            .namespace(&ns.name)
                            .detail("robot", robot.as_str()),
                    );
                    return Ok(robot_created(&viewer, &back, &robot, &token));
                }
                Err(RobotError::Metadata(e)) => return Err(e.into()),
                Err(e) => Flash::error(e.to_string()),
            }
        }
        other => return Err(PageError::BadRequest(format!("unknown action {other:?}"))),
    };
    viewer.leave_flash(&flash);
    Ok(see_other(&viewer, &back))
}

/// `expiration_s` in words: `1 day`, `2 hours`, `90 seconds`.
fn duration_words(seconds: i64) -> String {
    let (n, unit) = match seconds {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    #[test]
    fn expiration_in_words() {
        assert_eq!(super::duration_words(86_400), "1 day");
        assert_eq!(super::duration_words(7_200), "2 hours");
        assert_eq!(super::duration_words(90), "90 seconds");
        assert_eq!(super::duration_words(60), "1 minute");
    }
}
