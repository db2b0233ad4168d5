//! The Notifications section of a repository's Settings tab: the list (event, method, target
//! host, last delivery), the form adding one, and each one's Test and Delete buttons. The forms
//! post to the repository page like the tab's others ([`super::repository::act`]), with the
//! CSRF token, and work without JavaScript.

use maud::{html, Markup};
use serde_json::json;

use super::layout::time;
use super::session::{Flash, Viewer};
use super::{FormData, PageError};
use crate::app::AppState;
use crate::metadata::notifications::{NotificationRecord, EVENTS};
use crate::notify;
use oci::RepoName;

/// The section, for a repository admin.
pub(super) async fn section(
    state: &AppState,
    viewer: &Viewer,
    repo: &RepoName,
    base: &str,
) -> Result<Markup, PageError> {
    let list = state.notifier.store().notifications(repo).await?;
    Ok(html! {
        section.panel.notifications {
            h2 { "Notifications" }
            p.hint { "berth sends these after tags are pushed or deleted, retrying for a while when the target fails." }
            div.table-wrap {
                table.notifications {
                    thead { tr { th { "Title" } th { "Event" } th { "Method" } th { "Target" } th { "Last delivery" } th { span.sr-only { "Actions" } } } }
                    tbody {
                        @if list.is_empty() { tr { td.empty colspan="6" { "No notifications." } } }
                        @for n in &list { (row(viewer, base, n)) }
                    }
                }
            }
            h3 { "Add a notification" }
            form.add-notification.form-row method="post" action=(base) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="add-notification";
                select name="event" aria-label="Event" {
                    @for e in EVENTS { option value=(e) { (e) } }
                }
                select name="method" aria-label="Method" {
                    @for m in notify::METHODS { option value=(m) { (m) } }
                }
                input type="url" name="url" placeholder="https://hooks.example.com/..." required aria-label="URL";
                input type="text" name="title" placeholder="title (optional)" aria-label="Title";
                button.primary type="submit" { "Add" }
            }
        }
    })
}

fn row(viewer: &Viewer, base: &str, n: &NotificationRecord) -> Markup {
    html! {
        tr.notification data-uuid=(n.uuid) {
            td { (n.title) }
            td { (n.event) }
            td { (n.method) }
            td { code { (n.target_host()) } }
            td.last-delivery {
                @match &n.last_attempt {
                    None => { "never attempted" }
                    Some(a) if a.delivered() => {
                        span.ok { "delivered" } " (" (a.status.map_or(String::new(), |s| s.to_string())) ") " (time(a.at))
                    }
                    Some(a) => {
                        span.failed { "failed" } ": " (a.error.as_deref().unwrap_or("")) " " (time(a.at))
                    }
                }
                @if n.number_of_failures > 0 {
                    br; (n.number_of_failures) " given up"
                }
            }
            td {
                form.inline.test-notification method="post" action=(base) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="action" value="test-notification";
                    input type="hidden" name="uuid" value=(n.uuid);
                    button.secondary type="submit" { "Test" }
                }
                " "
                form.inline.delete-notification method="post" action=(base) {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    input type="hidden" name="action" value="delete-notification";
                    input type="hidden" name="uuid" value=(n.uuid);
                    button.danger type="submit" { "Delete" }
                }
            }
        }
    }
}

/// Carries out one of the section's forms (the caller checked admin rights and the CSRF
/// token); the flash message to show.
pub(super) async fn act(
    state: &AppState,
    viewer: &super::session::Viewer,
    repo: &RepoName,
    action: &str,
    form: &FormData,
) -> Result<Flash, PageError> {
    let store = state.notifier.store();
    Ok(match action {
        "add-notification" => {
            let request = notify::CreateRequest {
                event: Some(form.required("event")?.to_string()),
                method: Some(form.required("method")?.to_string()),
                config: Some(json!({ "url": form.required("url")?.trim() })),
                event_config: Some(json!({})),
                title: form.get("title").map(|t| t.trim().to_string()),
            };
            let allow = state.settings().notifications.allow_private_targets;
            match notify::validate(request, allow).await {
                Ok(new) => {
                    store.create_notification(repo, &new).await?;
                    state.usage.record(
                        viewer
                            .event("add_repo_notification")
                            .repository(repo)
                            .detail("notification_id", new.uuid.as_str())
                            .detail("event", new.event.as_str())
                            .detail("method", new.method.as_str()),
                    );
                    Flash::success(format!("Added the {} notification.", new.event))
                }
                Err(why) => Flash::error(why),
            }
        }
        "test-notification" => {
            let uuid = form.required("uuid")?;
            if store
                .queue_delivery(repo, uuid, &notify::test_event_data())
                .await?
            {
                Flash::success("Queued a test delivery.")
            } else {
                Flash::error("There is no such notification.")
            }
        }
        "delete-notification" => {
            let uuid = form.required("uuid")?;
            if store.delete_notification(repo, uuid).await? {
                state.usage.record(
                    viewer
                        .event("delete_repo_notification")
                        .repository(repo)
                        .detail("notification_id", uuid),
                );
                Flash::success("Deleted the notification.")
            } else {
                Flash::error("There is no such notification.")
            }
        }
        other => return Err(PageError::BadRequest(format!("unknown action {other:?}"))),
    })
}
