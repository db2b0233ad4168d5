//! The repository Settings tab's state and mirror panels (issue 20): the repository's state
//! with a form to change it, and for a mirror its configuration (never its password), its sync
//! status and a "Sync now" button. Administrators only, as every Settings form.

use maud::{html, Markup};
use oci::RepoName;

use super::layout::time;
use super::session::{Flash, Viewer};
use super::{FormData, PageError};
use crate::app::AppState;
use crate::metadata::accounts::RepoState;
use crate::metadata::now_millis;
use crate::mirror::sync::SyncLog;

/// The panels for `repo` (in `state`), posting to `base`.
pub(super) async fn section(
    app: &AppState,
    viewer: &Viewer,
    repo: &RepoName,
    state: RepoState,
    base: &str,
) -> Result<Markup, PageError> {
    let feature = app.settings().repo_mirror;
    let mirror = if feature {
        app.mirrors.store().mirror(repo).await?
    } else {
        None
    };
    let choices: &[(RepoState, &str)] = &[
        (
            RepoState::Normal,
            "Normal: pushes and tag changes as permissions allow",
        ),
        (
            RepoState::ReadOnly,
            "Read-only: nothing may change its content",
        ),
        (
            RepoState::Mirror,
            "Mirror: kept in sync with an external repository by berth",
        ),
    ];
    Ok(html! {
        section.panel.repository-state {
            h2 { "Repository state" }
            form.repository-state method="post" action=(base) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="set-state";
                @for (choice, label) in choices {
                    @if *choice != RepoState::Mirror || feature || state == RepoState::Mirror {
                        label.radio {
                            input type="radio" name="state" value=(choice.as_str()) checked[state == *choice];
                            " " (label)
                        }
                        br;
                    }
                }
                div.form-row { button.primary type="submit" { "Save state" } }
            }
        }
        @if feature {
            section.panel.mirror {
                h2 { "Mirror" }
                @match &mirror {
                    None => {
                        p.hint {
                            "No mirror configuration. Create one with "
                            code { "POST /api/v1/repository/" (repo.as_str()) "/mirror" }
                            ", then set the state to Mirror."
                        }
                    }
                    Some(m) => {
                        dl.facts.mirror-facts {
                            dt { "Source" } dd { code { (m.settings.external_reference) } }
                            dt { "Enabled" } dd { (if m.settings.is_enabled { "yes" } else { "no" }) }
                            dt { "Tags" } dd { @for (i, glob) in m.settings.rule_value.iter().enumerate() { @if i > 0 { ", " } code { (glob) } } }
                            dt { "Robot" } dd { (m.robot_username.as_deref().unwrap_or("(deleted)")) }
                            dt { "Registry user" } dd { (m.settings.registry_username.as_deref().unwrap_or("(anonymous)")) }
                            dt { "Interval" } dd { (m.settings.sync_interval) " s" }
                            dt { "Status" } dd.sync-status { (m.sync_status.as_str()) }
                            dt { "Next sync" } dd { (time(m.settings.sync_start_date)) }
                            dt { "Last sync" } dd { @match m.last_sync_at { Some(at) => (time(at)), None => "never" } }
                            dt { "Retries left" } dd { (m.sync_retries_remaining) }
                            @if let Some(until) = m.sync_expiration_date {
                                dt { "Claimed until" } dd { (time(until)) }
                            }
                        }
                        (last_sync(m.last_sync_log.as_deref()))
                        @if state != RepoState::Mirror {
                            p.hint { "The repository is not in state Mirror, so nothing syncs it." }
                        }
                        form.mirror-sync-now.form-row method="post" action=(base) {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            input type="hidden" name="action" value="mirror-sync-now";
                            button.secondary type="submit" { "Sync now" }
                        }
                    }
                }
            }
        }
    })
}

/// The last sync's outcome and its per-tag lines.
fn last_sync(log: Option<&str>) -> Markup {
    let Some(log) = log.and_then(SyncLog::parse) else {
        return html! { p.hint.mirror-log { "No sync has run yet." } };
    };
    html! {
        div.mirror-log {
            h3 { "Last sync" }
            dl.facts {
                dt { "Result" } dd.sync-result { (log.result) }
                dt { "Started" } dd { (log.started) }
                dt { "Finished" } dd { (log.finished) }
                @if let Some(error) = &log.error {
                    dt { "Error" } dd.sync-error { (error) }
                }
                dt { "Tags" } dd {
                    (log.tags_copied) " copied, " (log.tags_unchanged) " unchanged, "
                    (log.tags_failed) " failed, " (log.tags_removed) " removed"
                }
                dt { "Transferred" } dd {
                    (log.manifests_copied) " manifests, " (log.blobs_copied) " blobs, "
                    (log.bytes_copied) " bytes"
                }
            }
            @if !log.tags.is_empty() {
                table.mirror-log-tags {
                    thead { tr { th { "Tag" } th { "Result" } th { "Digest" } th { "Error" } } }
                    tbody {
                        @for line in &log.tags {
                            tr {
                                td { code { (line.tag) } }
                                td { (line.result.as_str()) }
                                td { @if let Some(d) = &line.digest { code.digest { (d) } } }
                                td { (line.error.as_deref().unwrap_or("")) }
                            }
                        }
                    }
                }
                @if log.tags_omitted > 0 {
                    p.hint { "… and " (log.tags_omitted) " more tags." }
                }
            }
        }
    }
}

/// The panels' forms (`set-state`, `mirror-sync-now`); the caller checked admin rights.
pub(super) async fn act(
    app: &AppState,
    viewer: &Viewer,
    repo: &RepoName,
    action: &str,
    form: &FormData,
) -> Result<Flash, PageError> {
    Ok(match action {
        "set-state" => {
            let name = form.required("state")?;
            let state = RepoState::parse(name)
                .filter(|s| *s != RepoState::Mirror || app.settings().repo_mirror)
                .ok_or_else(|| {
                    PageError::BadRequest(format!("unknown repository state {name:?}"))
                })?;
            if !app
                .auth
                .accounts()
                .set_repository_state(repo, state)
                .await?
            {
                return Err(PageError::NotFound);
            }
            app.usage.record(
                viewer
                    .event("change_repo_state")
                    .repository(repo)
                    .detail("state_changed", state.as_str()),
            );
            Flash::success(format!("{repo} is now in state {}.", state.as_str()))
        }
        "mirror-sync-now" => {
            if !app.settings().repo_mirror {
                return Err(PageError::NotFound);
            }
            if app
                .mirrors
                .store()
                .request_mirror_sync(repo, now_millis())
                .await?
            {
                app.usage.record(
                    viewer
                        .event("repo_mirror_sync_now_requested")
                        .repository(repo),
                );
                app.mirrors.wake();
                Flash::success("A sync was requested.".to_string())
            } else {
                Flash::error("No sync was requested: a sync is running, or there is no mirror configuration.".to_string())
            }
        }
        other => return Err(PageError::BadRequest(format!("unknown action {other:?}"))),
    })
}
