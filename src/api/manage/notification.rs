//! `/api/v1/repository/<repo>/notification/`: Quay's repository notifications. Only the
//! repository's admins may list, create, read, test, reset or delete them (the same
//! `require_admin` as every admin endpoint of a repository).
//!
//! Responses carry Quay's fields (`uuid`, `title`, `event`, `method`, `config`,
//! `event_config`, `number_of_failures`) plus berth's `last_delivery` (the outcome of the
//! latest attempt) and `last_delivered_at`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use oci::RepoName;
use serde_json::{json, Value};

use super::repository::Ctx;
use super::ManageError;
use crate::metadata::notifications::NotificationRecord;
use crate::notify;

/// A notification as the API shows it.
pub(super) fn notification_json(n: &NotificationRecord) -> Value {
    let object = |text: &str| serde_json::from_str::<Value>(text).unwrap_or_else(|_| json!({}));
    let seconds = |millis: i64| millis as f64 / 1000.0;
    json!({
        "uuid": n.uuid,
        "title": n.title,
        "event": n.event,
        "method": n.method,
        "config": object(&n.config),
        "event_config": object(&n.event_config),
        "number_of_failures": n.number_of_failures,
        "last_delivery": n.last_attempt.as_ref().map(|a| json!({
            "time": seconds(a.at),
            "status_code": a.status,
            "error": a.error,
            "delivered": a.delivered(),
        })),
        "last_delivered_at": n.last_delivered_at.map(seconds),
    })
}

/// Quay answers a missing notification with 400 on every method but GET.
fn no_such(repo: &RepoName, uuid: &str) -> ManageError {
    ManageError::BadRequest(format!(
        "No repository notification found for: {repo}, {uuid}"
    ))
}

impl Ctx<'_> {
    /// `GET .../notification/`.
    pub(super) async fn list_notifications(
        &self,
        repo: &RepoName,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let list = self.state.notifier.store().notifications(repo).await?;
        let list: Vec<Value> = list.iter().map(notification_json).collect();
        Ok(Json(json!({ "notifications": list })).into_response())
    }

    /// `POST .../notification/`: 201 with the new notification.
    pub(super) async fn create_notification(
        &self,
        repo: &RepoName,
        body: Value,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let request: notify::CreateRequest = serde_json::from_value(body)
            .map_err(|e| ManageError::BadRequest(format!("invalid notification: {e}")))?;
        let allow_private = self.state.settings().notifications.allow_private_targets;
        let new = notify::validate(request, allow_private)
            .await
            .map_err(ManageError::BadRequest)?;
        let store = self.state.notifier.store();
        store.create_notification(repo, &new).await?;
        let created = store
            .notification(repo, &new.uuid)
            .await?
            .ok_or_else(|| ManageError::NotFound(format!("repository {repo} not found")))?;
        tracing::info!(repository = %repo, notification = %created.uuid, event = %created.event,
            method = %created.method, target = %created.target_host(), "notification created");
        self.record(
            self.caller
                .event("add_repo_notification")
                .repository(repo)
                .detail("notification_id", created.uuid.as_str())
                .detail("event", created.event.as_str())
                .detail("method", created.method.as_str()),
        );
        Ok((StatusCode::CREATED, Json(notification_json(&created))).into_response())
    }

    /// `GET .../notification/{uuid}`.
    pub(super) async fn get_notification(
        &self,
        repo: &RepoName,
        uuid: &str,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        match self.state.notifier.store().notification(repo, uuid).await? {
            Some(n) => Ok(Json(notification_json(&n)).into_response()),
            None => Err(ManageError::NotFound(format!("no notification {uuid}"))),
        }
    }

    /// `DELETE .../notification/{uuid}`: 204; deliveries it still owed are dropped.
    pub(super) async fn delete_notification(
        &self,
        repo: &RepoName,
        uuid: &str,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        if self
            .state
            .notifier
            .store()
            .delete_notification(repo, uuid)
            .await?
        {
            tracing::info!(repository = %repo, notification = %uuid, "notification deleted");
            self.record(
                self.caller
                    .event("delete_repo_notification")
                    .repository(repo)
                    .detail("notification_id", uuid),
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        } else {
            Err(no_such(repo, uuid))
        }
    }

    /// `POST .../notification/{uuid}`: Quay's reset of `number_of_failures`; 204.
    pub(super) async fn reset_notification(
        &self,
        repo: &RepoName,
        uuid: &str,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let store = self.state.notifier.store();
        if store.reset_notification_failures(repo, uuid).await? {
            self.record(
                self.caller
                    .event("reset_repo_notification")
                    .repository(repo)
                    .detail("notification_id", uuid),
            );
            Ok(StatusCode::NO_CONTENT.into_response())
        } else {
            Err(no_such(repo, uuid))
        }
    }

    /// `POST .../notification/{uuid}/test`: queues a test delivery (sample tags, `test:
    /// true`); `{}` as Quay answers.
    pub(super) async fn test_notification(
        &self,
        repo: &RepoName,
        uuid: &str,
    ) -> Result<Response, ManageError> {
        self.require_admin(repo).await?;
        let store = self.state.notifier.store();
        if store
            .queue_delivery(repo, uuid, &notify::test_event_data())
            .await?
        {
            Ok(Json(json!({})).into_response())
        } else {
            Err(no_such(repo, uuid))
        }
    }
}
