//! `/repository/<ns>/<repo>`: the Tags tab (`?tab=tags`), the Settings tab (`?tab=settings`),
//! and the forms they post; `/repository/<ns>/<repo>/manifest/<digest>` is handed to
//! [`super::manifest`].

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::{html, Markup};
use oci::{Digest, Reference, RepoName, Tag};
use serde::Deserialize;

use super::kinds::KindView;
use super::layout::{digest_cell, human_size, icon, page, query_escape, time};
use super::session::{Flash, Viewer};
use super::{manifest, see_other, FormData, PageError};
use crate::app::AppState;
use crate::auth::scope::Actions;
use crate::metadata::accounts::{AccountKind, Grantee, RepoState, RepositoryInfo, Role};
use crate::metadata::trust::{StoredVerdict, TrustScope};
use crate::metadata::{Describer, TagDetail, TagQuery};

/// Tags per page.
const PAGE_SIZE: u32 = 50;

/// A repository the visitor may see, with what they may do there.
pub(super) struct RepoAccess {
    pub repo: RepoName,
    pub info: RepositoryInfo,
    pub actions: Actions,
    pub admin: bool,
}

impl RepoAccess {
    /// Resolves `repo` for `viewer`: 404 when it does not exist or they may not pull it.
    pub async fn resolve(
        state: &AppState,
        viewer: &Viewer,
        repo: RepoName,
    ) -> Result<RepoAccess, PageError> {
        let info = state
            .auth
            .accounts()
            .repository_info(&repo)
            .await?
            .ok_or(PageError::NotFound)?;
        let actions = state
            .auth
            .live_actions(viewer.identity.as_ref(), &repo)
            .await?;
        if !actions.pull {
            return Err(PageError::NotFound);
        }
        let admin = match &viewer.identity {
            Some(who) => state.auth.is_repo_admin(who, &repo).await?,
            None => false,
        };
        Ok(RepoAccess {
            repo,
            info,
            actions,
            admin,
        })
    }

    pub fn url(&self) -> String {
        format!("/repository/{}", self.repo)
    }

    /// Page heading with visibility and tabs.
    pub fn header(&self, active: &str) -> Markup {
        let url = self.url();
        html! {
            div.page-head {
                div {
                    h1.repo-title {
                        a href={ "/repository/?filter=" (query_escape(self.repo.namespace())) } { (self.repo.namespace()) }
                        " / "
                        a href={ (url) "?tab=tags" } { (self.repo.as_str().split_once('/').map_or("", |(_, r)| r)) }
                    }
                    p.sub {
                        @if self.info.public { span.pill.pill-public { (icon("public")) "public" } }
                        @else { span.pill.pill-private { (icon("lock")) "private" } }
                        @match self.info.state {
                            RepoState::Normal => {}
                            RepoState::ReadOnly => { " " span.pill.pill-state title="Nothing may change its content" { "read-only" } }
                            RepoState::Mirror => { " " span.pill.pill-state title="Kept in sync by berth; pushes are refused" { "mirror" } }
                        }
                        @if !self.info.description.is_empty() { " " (self.info.description) }
                    }
                }
            }
            nav.tabs {
                a.active[active == "tags"] href={ (url) "?tab=tags" } { "Tags" }
                @if self.admin {
                    a.active[active == "logs"] href={ (url) "?tab=logs" } { "Usage Logs" }
                    a.active[active == "settings"] href={ (url) "?tab=settings" } { "Settings" }
                }
            }
        }
    }
}

/// What a `/repository/<path>` names.
#[derive(Debug, PartialEq)]
enum Target {
    Repository,
    /// `<repo>/manifest/<digest>`.
    Manifest(Digest),
    /// `<repo>/manifest/<digest>/raw`.
    RawManifest(Digest),
}

/// Splits `/repository/<path>` into a repository and what of it the path names.
fn split_path(path: &str) -> Result<(RepoName, Target), PageError> {
    let path = path.trim_end_matches('/');
    // A repository may itself have a path component named "manifest": only a digest after
    // it makes this a manifest page.
    if let Some((repo, rest)) = path.rsplit_once("/manifest/") {
        let (digest, target): (&str, fn(Digest) -> Target) = match rest.strip_suffix("/raw") {
            Some(digest) => (digest, Target::RawManifest),
            None => (rest, Target::Manifest),
        };
        if let Ok(digest) = digest.parse::<Digest>() {
            let repo: RepoName = repo.parse().map_err(|_| PageError::NotFound)?;
            return Ok((repo, target(digest)));
        }
    }
    Ok((
        path.parse().map_err(|_| PageError::NotFound)?,
        Target::Repository,
    ))
}

#[derive(Deserialize, Default)]
pub struct RepoQuery {
    tab: Option<String>,
    filter: Option<String>,
    page: Option<u32>,
    signatures: Option<String>,
    delete: Option<String>,
    layers_page: Option<u32>,
    manifests_page: Option<u32>,
    annotations_page: Option<u32>,
    referrers_page: Option<u32>,
    kind: Option<String>,
    next_page: Option<String>,
}

/// `GET /repository/{*path}`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(path): Path<String>,
    Query(q): Query<RepoQuery>,
) -> Result<Response, PageError> {
    let (repo, target) = split_path(&path)?;
    let access = RepoAccess::resolve(&state, &viewer, repo).await?;
    match target {
        Target::Repository => {}
        Target::Manifest(digest) => {
            let pages = manifest::ListPages {
                layers: q.layers_page,
                manifests: q.manifests_page,
                annotations: q.annotations_page,
                referrers: q.referrers_page,
            };
            return manifest::show(&state, &viewer, &access, &digest, pages).await;
        }
        Target::RawManifest(digest) => return manifest::raw(&state, &access, &digest).await,
    }
    match q.tab.as_deref() {
        Some("settings") if access.admin => settings_tab(&state, &viewer, &access).await,
        Some("settings") if viewer.identity.is_some() => Err(PageError::Forbidden),
        Some("settings") => Err(PageError::SignIn(format!("{}?tab=settings", access.url()))),
        Some("logs") if access.admin => {
            let base = format!("{}?tab=logs", access.url());
            let logs = super::usage::LogsQuery {
                kind: q.kind.clone(),
                next_page: q.next_page.clone(),
            };
            let scope = crate::metadata::usage_log::LogScope::Repository(access.repo.as_str());
            let section = super::usage::section(&state, scope, &base, &logs).await?;
            let body = html! { (access.header("logs")) (section) };
            Ok(page(&viewer, &format!("{} usage logs", access.repo), body))
        }
        Some("logs") if viewer.identity.is_some() => Err(PageError::Forbidden),
        Some("logs") => Err(PageError::SignIn(format!("{}?tab=logs", access.url()))),
        _ => tags_tab(&state, &viewer, &access, &q).await,
    }
}

/// The URL of the tags tab with these settings.
fn tags_url(base: &str, filter: Option<&str>, signatures: bool, page: u32) -> String {
    let mut url = format!("{base}?tab=tags");
    if let Some(f) = filter {
        url.push_str("&filter=");
        url.push_str(&query_escape(f));
    }
    if signatures {
        url.push_str("&signatures=1");
    }
    if page > 1 {
        url.push_str(&format!("&page={page}"));
    }
    url
}

async fn tags_tab(
    state: &AppState,
    viewer: &Viewer,
    access: &RepoAccess,
    q: &RepoQuery,
) -> Result<Response, PageError> {
    let _permit = state
        .renders
        .enter(super::render_gate::WAIT)
        .await
        .ok_or(PageError::Busy)?;
    let base = access.url();
    let filter = q
        .filter
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty() && f.len() <= 128);
    let signatures = q.signatures.as_deref() == Some("1");
    let page_no = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let mut rows = state
        .registry
        .tag_details(
            &access.repo,
            &TagQuery {
                filter,
                cosign_tags: signatures,
                offset: (page_no - 1) * PAGE_SIZE,
                limit: PAGE_SIZE + 1,
            },
        )
        .await?;
    let more = rows.len() > PAGE_SIZE as usize;
    rows.truncate(PAGE_SIZE as usize);
    let mut targets: Vec<Digest> = rows.iter().map(|t| t.digest.clone()).collect();
    targets.sort();
    targets.dedup();
    let mut signers: HashMap<Digest, Describer> = HashMap::new();
    for d in state.registry.describers(&access.repo, &targets).await? {
        if d.kind == "signature" {
            signers.entry(d.target.clone()).or_insert(d);
        }
    }
    // One batch read of the stored signature verdicts for the whole page (issue 19).
    let verdicts: HashMap<Digest, StoredVerdict> = super::trust::store(state)
        .verdicts(&access.repo, &targets)
        .await?
        .into_iter()
        .map(|v| (v.digest.clone(), v))
        .collect();
    let confirm = match q.delete.as_deref() {
        Some(tag) if access.actions.delete => Some(
            tag.parse::<Tag>()
                .map_err(|_| PageError::BadRequest("not a tag name".into()))?,
        ),
        Some(_) => return Err(PageError::Forbidden),
        None => None,
    };
    let here = tags_url(&base, filter, signatures, page_no);
    let body = html! {
        (access.header("tags"))
        @if let Some(tag) = &confirm {
            div.confirm {
                h2 { "Delete tag " code { (tag.as_str()) } "?" }
                p { "The tag goes away; the manifest stays, reachable by digest, until no tag or index needs it." }
                form.confirm-delete method="post" action=(base) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="action" value="delete-tag";
                    input type="hidden" name="tag" value=(tag.as_str());
                    input type="hidden" name="back" value=(here);
                    div.form-row {
                        button.danger type="submit" { "Delete tag" }
                        a.button.secondary href=(here) { "Cancel" }
                    }
                }
            }
        }
        div.toolbar {
            form.tag-filter method="get" action=(base) role="search" {
                input type="hidden" name="tab" value="tags";
                @if signatures { input type="hidden" name="signatures" value="1"; }
                input type="search" name="filter" value=[filter] placeholder="Filter tags" aria-label="Filter tags by name";
                button.secondary type="submit" { "Filter" }
            }
            @if signatures {
                a.toggle-signatures href=(tags_url(&base, filter, false, 1)) { "Hide signatures" }
            } @else {
                a.toggle-signatures href=(tags_url(&base, filter, true, 1)) title="Show cosign sha256-*.sig, .att and .sbom tags" { "Show signatures" }
            }
        }
        @if rows.is_empty() {
            div.panel.empty {
                @if filter.is_some() || page_no > 1 { "No tags match." }
                @else { "This repository has no tags yet." }
            }
        } @else {
            div.table-wrap {
                table.tags {
                    thead { tr {
                        th { "Tag" }
                        th { "Kind" }
                        th { "Security" }
                        th.num { "Size" }
                        th.opt { "Last modified" }
                        th { "Digest" }
                        th { "Pull" }
                        @if access.actions.delete { th { span.sr-only { "Actions" } } }
                    } }
                    tbody {
                        @for t in &rows {
                            (tag_row(viewer, access, t, signers.get(&t.digest), verdicts.get(&t.digest), &here))
                        }
                    }
                }
            }
        }
        @if page_no > 1 || more {
            nav.pager aria-label="Pages" {
                @if page_no > 1 { a rel="prev" href=(tags_url(&base, filter, signatures, page_no - 1)) { "← Previous" } }
                span { "Page " (page_no) }
                @if more { a rel="next" href=(tags_url(&base, filter, signatures, page_no + 1)) { "Next →" } }
            }
        }
    };
    Ok(page(viewer, access.repo.as_str(), body))
}

fn tag_row(
    viewer: &Viewer,
    access: &RepoAccess,
    t: &TagDetail,
    signer: Option<&Describer>,
    verdict: Option<&StoredVerdict>,
    here: &str,
) -> Markup {
    let view = KindView::new(&t.kind, t.artifact_type.as_deref(), t.details.as_deref());
    let manifest_url = format!("{}/manifest/{}", access.url(), t.digest);
    let pull = view.pull_command(&viewer.host, access.repo.as_str(), &t.name);
    let cosign = t
        .name
        .parse::<Tag>()
        .ok()
        .and_then(|tag| crate::registry::facts::cosign_tag_target(&tag))
        .is_some();
    html! {
        tr.tag-row.cosign-tag[cosign] data-tag=(t.name) {
            td.tag-name {
                a href=(manifest_url) title=(t.name) {
                    @if cosign && t.name.len() > 24 {
                        // sha256-<64 hex>.sig is too long for a table cell; the title has it all.
                        (t.name[..19]) "…" (t.name[t.name.len() - 4..].trim_start_matches('.'))
                    } @else { (t.name) }
                }
            }
            td { (view.cell()) }
            td.security {
                @if let Some(trust) = verdict.and_then(|v| super::trust::badge(&manifest_url, v)) {
                    (trust)
                } @else if let Some(sig) = signer {
                    a.badge-signed href={ (access.url()) "/manifest/" (sig.digest) } title={ "Signed: " (sig.tag.as_deref().unwrap_or(&sig.digest.to_string())) } {
                        (icon("signature")) "signed"
                    }
                }
                @if let Some(target) = &t.signed {
                    span.hint { "for " a href={ (access.url()) "/manifest/" (target) } { code { (super::layout::short_digest(&target.to_string())) } } }
                }
            }
            td.num.size { (human_size(t.total_size)) }
            td.opt.modified { (time(t.updated_at)) }
            td.digest { (digest_cell(&t.digest.to_string())) }
            td.pull {
                div.pull-wrap {
                    code.pull-command { (pull) }
                    button.copy type="button" data-copy=(pull) title="Copy the pull command" { (icon("copy")) span.sr-only { "Copy" } }
                }
            }
            @if access.actions.delete {
                td { a.delete-tag href={ (here) "&delete=" (query_escape(&t.name)) } { "Delete" } }
            }
        }
    }
}

async fn settings_tab(
    state: &AppState,
    viewer: &Viewer,
    access: &RepoAccess,
) -> Result<Response, PageError> {
    let permissions = state.auth.accounts().list_permissions(&access.repo).await?;
    let base = access.url();
    let notifications = super::notifications::section(state, viewer, &access.repo, &base).await?;
    let mirror =
        super::mirror::section(state, viewer, &access.repo, access.info.state, &base).await?;
    let trust = super::trust::settings(
        super::trust::store(state),
        viewer,
        &TrustScope::Repository(access.repo.clone()),
        &base,
    )
    .await?;
    let role_select = |current: Option<Role>| {
        html! {
            select name="role" aria-label="Role" {
                @for role in [Role::Read, Role::Write, Role::Admin] {
                    option value=(role.as_str()) selected[current == Some(role)] { (role.as_str()) }
                }
            }
        }
    };
    let body = html! {
        (access.header("settings"))
        section.panel {
            h2 { "Visibility" }
            form.visibility method="post" action=(base) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="visibility";
                label.radio { input type="radio" name="visibility" value="public" checked[access.info.public]; " Public: anyone may pull, without signing in" }
                br;
                label.radio { input type="radio" name="visibility" value="private" checked[!access.info.public]; " Private: only those granted access" }
                div.form-row { button.primary type="submit" { "Save visibility" } }
            }
        }
        section.panel {
            h2 { "Permissions" }
            p.hint { "Namespace owners, organization admins and superusers have admin rights without a grant." }
            div.table-wrap {
                table.permissions {
                    thead { tr { th { "Who" } th { "Kind" } th { "Role" } th { span.sr-only { "Remove" } } } }
                    tbody {
                        @if permissions.is_empty() { tr { td.empty colspan="4" { "No grants." } } }
                        @for p in &permissions {
                            @let (kind, name) = match &p.grantee {
                                Grantee::Account(n) => (if p.kind == Some(AccountKind::Robot) { "robot" } else { "user" }, n.as_str()),
                                Grantee::Team(n) => ("team", n.as_str()),
                            };
                            tr.permission data-grantee=(name) {
                                td { (icon(if kind == "team" { "team" } else if kind == "robot" { "robot" } else { "user" })) " " (name) }
                                td { (kind) }
                                td {
                                    form.inline.set-permission method="post" action=(base) {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        input type="hidden" name="action" value="set-permission";
                                        input type="hidden" name="kind" value=(kind);
                                        input type="hidden" name="name" value=(name);
                                        (role_select(Some(p.role)))
                                        " "
                                        button.secondary type="submit" { "Change" }
                                    }
                                }
                                td {
                                    form.inline.remove-permission method="post" action=(base) {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        input type="hidden" name="action" value="remove-permission";
                                        input type="hidden" name="kind" value=(kind);
                                        input type="hidden" name="name" value=(name);
                                        button.secondary type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Grant access" }
            form.add-permission.form-row method="post" action=(base) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="set-permission";
                select name="kind" aria-label="Kind" {
                    option value="user" { "user" }
                    option value="robot" { "robot" }
                    option value="team" { "team" }
                }
                input type="text" name="name" placeholder="name (robots: ns+name)" required aria-label="Name";
                (role_select(Some(Role::Read)))
                button.primary type="submit" { "Grant" }
            }
        }
        (mirror)
        (notifications)
        (trust)
        section.panel {
            h2 { "Delete repository" }
            p { "Deletes every tag and manifest of " code { (access.repo.as_str()) } ". This cannot be undone." }
            form.delete-repository.form-row method="post" action=(base) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="delete-repository";
                input type="text" name="confirm" placeholder=(access.repo.as_str()) required aria-label="Type the repository name to confirm";
                button.danger type="submit" { "Delete repository" }
            }
        }
    };
    Ok(page(viewer, &format!("{} settings", access.repo), body))
}

/// `POST /repository/{*path}`: the forms of the Tags and Settings tabs.
pub async fn act(
    State(state): State<AppState>,
    mut viewer: Viewer,
    Path(path): Path<String>,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PageError> {
    let (repo, target) = split_path(&path)?;
    if target != Target::Repository {
        return Err(PageError::NotFound);
    }
    let back_to = format!("/repository/{repo}?tab=tags");
    viewer.required(&back_to)?;
    viewer.check_form(&headers, form.get("csrf"))?;
    let access = RepoAccess::resolve(&state, &viewer, repo).await?;
    let accounts = state.auth.accounts();
    let settings = format!("{}?tab=settings", access.url());
    let (flash, location) = match form.required("action")? {
        "delete-tag" => {
            if !access.actions.delete {
                return Err(PageError::Forbidden);
            }
            let tag: Tag = form
                .required("tag")?
                .parse()
                .map_err(|_| PageError::BadRequest("not a tag name".into()))?;
            let back = form
                .get("back")
                .filter(|b| b.starts_with(&format!("{}?", access.url())))
                .map_or(back_to.clone(), str::to_string);
            let refusal = crate::mirror::content_refusal(&state, None, &access.repo).await?;
            match refusal {
                Some(why) => (Flash::error(why), back),
                None => match state
                    .registry
                    .delete_manifest(&access.repo, &Reference::Tag(tag.clone()))
                    .await
                {
                    Ok(()) => {
                        state.usage.record(
                            viewer
                                .event("delete_tag")
                                .repository(&access.repo)
                                .detail("tag", tag.as_str()),
                        );
                        (Flash::success(format!("Deleted tag {tag}.")), back)
                    }
                    Err(crate::registry::RegistryError::ManifestUnknown) => {
                        (Flash::error(format!("There is no tag {tag}.")), back)
                    }
                    Err(e) => return Err(e.into()),
                },
            }
        }
        "visibility" => {
            if !access.admin {
                return Err(PageError::Forbidden);
            }
            let public = match form.required("visibility")? {
                "public" => true,
                "private" => false,
                _ => {
                    return Err(PageError::BadRequest(
                        "visibility is public or private".into(),
                    ))
                }
            };
            accounts.set_visibility(&access.repo, public).await?;
            let word = if public { "public" } else { "private" };
            state.usage.record(
                viewer
                    .event("change_repo_visibility")
                    .repository(&access.repo)
                    .detail("visibility", word),
            );
            (
                Flash::success(format!("{} is now {word}.", access.repo)),
                settings,
            )
        }
        "set-permission" | "remove-permission" => {
            if !access.admin {
                return Err(PageError::Forbidden);
            }
            let (grantee, label) = grantee(&state, &access.repo, &form).await?;
            let (detail, who) = match &grantee {
                Grantee::Account(name) => ("username", name.clone()),
                Grantee::Team(name) => ("team", name.clone()),
            };
            if form.get("action") == Some("remove-permission") {
                if accounts.remove_permission(&access.repo, &grantee).await? {
                    state.usage.record(
                        viewer
                            .event("delete_repo_permission")
                            .repository(&access.repo)
                            .detail(detail, who),
                    );
                }
                (
                    Flash::success(format!("Removed the grant of {label}.")),
                    settings,
                )
            } else {
                let role = Role::parse(form.required("role")?)
                    .ok_or_else(|| PageError::BadRequest("role is read, write or admin".into()))?;
                match accounts.set_permission(&access.repo, &grantee, role).await {
                    Ok(()) => {
                        state.usage.record(
                            viewer
                                .event("change_repo_permission")
                                .repository(&access.repo)
                                .detail(detail, who)
                                .detail("role", role.as_str()),
                        );
                        (
                            Flash::success(format!("{label} now has {} access.", role.as_str())),
                            settings,
                        )
                    }
                    Err(crate::metadata::MetadataError::NotFound) => {
                        (Flash::error(format!("There is no {label}.")), settings)
                    }
                    Err(crate::metadata::MetadataError::Refused(why)) => {
                        (Flash::error(why), settings)
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        "delete-repository" => {
            if !access.admin {
                return Err(PageError::Forbidden);
            }
            if form.get("confirm").map(str::trim) != Some(access.repo.as_str()) {
                (
                    Flash::error("Type the repository's full name to confirm the deletion."),
                    settings,
                )
            } else {
                accounts.delete_repository(&access.repo).await?;
                state
                    .usage
                    .record(viewer.event("delete_repo").repository(&access.repo));
                tracing::info!(repository = %access.repo, "repository deleted from the dashboard");
                (
                    Flash::success(format!("Deleted repository {}.", access.repo)),
                    "/repository/".to_string(),
                )
            }
        }
        action @ ("add-notification" | "test-notification" | "delete-notification") => {
            if !access.admin {
                return Err(PageError::Forbidden);
            }
            let flash =
                super::notifications::act(&state, &viewer, &access.repo, action, &form).await?;
            (flash, settings)
        }
        action @ ("set-state" | "mirror-sync-now") => {
            if !access.admin {
                return Err(PageError::Forbidden);
            }
            let flash = super::mirror::act(&state, &viewer, &access.repo, action, &form).await?;
            (flash, settings)
        }
        action @ ("add-trust-key" | "delete-trust-key" | "trust-policy") => {
            if !access.admin {
                return Err(PageError::Forbidden);
            }
            let flash = super::trust::act(
                super::trust::store(&state),
                &state.usage,
                &viewer,
                &TrustScope::Repository(access.repo.clone()),
                action,
                &form,
            )
            .await?;
            (flash, settings)
        }
        other => return Err(PageError::BadRequest(format!("unknown action {other:?}"))),
    };
    viewer.leave_flash(&flash);
    Ok(see_other(&viewer, &location))
}

/// The grantee a permission form names, checked to exist with the kind it claims.
async fn grantee(
    state: &AppState,
    repo: &RepoName,
    form: &FormData,
) -> Result<(Grantee, String), PageError> {
    let name = form.required("name")?;
    let kind = form.required("kind")?;
    if name.len() > 256 {
        return Err(PageError::BadRequest("name too long".into()));
    }
    match kind {
        "team" => Ok((Grantee::Team(name.to_string()), format!("team {name}"))),
        "user" | "robot" => {
            let full = if kind == "robot" && !name.contains('+') {
                format!("{}+{name}", repo.namespace())
            } else {
                name.to_string()
            };
            let want = if kind == "robot" {
                AccountKind::Robot
            } else {
                AccountKind::User
            };
            match state.auth.accounts().account(&full).await? {
                Some(a) if a.kind == want => {
                    Ok((Grantee::Account(full.clone()), format!("{kind} {full}")))
                }
                _ => Err(PageError::BadRequest(format!("there is no {kind} {full}"))),
            }
        }
        _ => Err(PageError::BadRequest("kind is user, robot or team".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::{split_path, Target};

    #[test]
    fn paths_name_a_repository_or_a_manifest() {
        let (repo, t) = split_path("userorg/helm/quarkus").unwrap();
        assert_eq!(
            (repo.as_str(), t),
            ("userorg/helm/quarkus", Target::Repository)
        );
        let digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let (repo, t) = split_path(&format!("a/b/manifest/{digest}")).unwrap();
        assert_eq!(repo.as_str(), "a/b");
        assert_eq!(t, Target::Manifest(digest.parse().unwrap()));
        let (repo, t) = split_path(&format!("a/b/manifest/{digest}/raw")).unwrap();
        assert_eq!(repo.as_str(), "a/b");
        assert_eq!(t, Target::RawManifest(digest.parse().unwrap()));
        let (repo, t) = split_path("a/manifest/b").unwrap();
        assert_eq!((repo.as_str(), t), ("a/manifest/b", Target::Repository));
        assert!(split_path(&format!("a/b/manifest/{digest}/other")).is_err());
        assert!(split_path("../etc").is_err());
        assert!(split_path("A/B").is_err());
    }
}
