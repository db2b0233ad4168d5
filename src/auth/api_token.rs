//! API tokens, Quay's application-specific tokens: secrets a user sends as
//! `Authorization: Bearer berth_...` to `/api/v1` and `/v2`, standing for that user until they
//! expire (`APP_SPECIFIC_TOKEN_EXPIRATION`, or the CLI's `--expires-in`), are revoked, or the
//! user's password changes. Only their SHA-256 is stored; each has a public `uuid` by which
//! the API, the dashboard and the CLI name it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{secret, Auth, Identity, API_TOKEN_PREFIX};
use crate::metadata::accounts::{AccountKind, AccountStore, ApiToken, API_TOKEN_ACCESS_RESOLUTION};
use crate::metadata::MetadataError;

/// Longest token title, in characters.
pub const MAX_TITLE_CHARS: usize = 255;

/// Why an API token was not created.
#[derive(Debug, thiserror::Error)]
pub enum ApiTokenError {
    #[error(
        "a token title has 1 to {MAX_TITLE_CHARS} characters, none of them control characters"
    )]
    BadTitle,
    #[error("API tokens belong to users; {0} is not a user")]
    NotAUser(String),
    #[error(transparent)]
    Metadata(MetadataError),
}

/// Now, in milliseconds since the Unix epoch (the unit of [`ApiToken`]'s times).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whether a token that expires at `expires_at` has expired at `now` (both in milliseconds).
pub fn expired(expires_at: Option<i64>, now: i64) -> bool {
    expires_at.is_some_and(|at| at <= now)
}

/// Records that `token` was used at `now`, unless that was already recorded less than
/// [`API_TOKEN_ACCESS_RESOLUTION`] ago. A failure to record it does not refuse the request.
pub async fn record_use(accounts: &dyn AccountStore, token: &ApiToken, now: i64) {
    let resolution = API_TOKEN_ACCESS_RESOLUTION.as_millis() as i64;
    if token.last_accessed.is_some_and(|at| now - at < resolution) {
        return;
    }
    if let Err(e) = accounts.touch_api_token(token.uuid, now).await {
        tracing::warn!(token = %token.uuid, error = %e, "could not record an API token's use");
    }
}

/// Creates an API token for the user `user`, titled `title` (trimmed), expiring `lifetime`
/// from now (never for `None`): its record and its secret, which berth keeps only hashed and
/// so can show only this once. Tokens that expired more than `keep_expired` ago, anyone's,
/// are deleted first (Quay's `EXPIRED_APP_SPECIFIC_TOKEN_GC`).
pub async fn create(
    accounts: &dyn AccountStore,
    user: &str,
    title: &str,
    lifetime: Option<Duration>,
    keep_expired: Duration,
) -> Result<(ApiToken, String), ApiTokenError> {
    let title = title.trim();
    if title.is_empty()
        || title.chars().count() > MAX_TITLE_CHARS
        || title.chars().any(char::is_control)
    {
        return Err(ApiTokenError::BadTitle);
    }
    let created_at = now_millis();
    let keep_expired = i64::try_from(keep_expired.as_millis()).unwrap_or(i64::MAX);
    accounts
        .purge_expired_api_tokens(created_at.saturating_sub(keep_expired))
        .await
        .map_err(ApiTokenError::Metadata)?;
    let lifetime = lifetime.map(|l| i64::try_from(l.as_millis()).unwrap_or(i64::MAX));
    let token = ApiToken {
        uuid: uuid::Uuid::new_v4(),
        name: title.to_string(),
        account: user.to_string(),
        created_at,
        expires_at: lifetime.map(|l| created_at.saturating_add(l)),
        last_accessed: None,
    };
    let secret = secret::random_token(API_TOKEN_PREFIX);
    match accounts
        .create_api_token(&token, &secret::token_hash(&secret))
        .await
    {
        Ok(()) => Ok((token, secret)),
        Err(MetadataError::NotFound) => Err(ApiTokenError::NotAUser(user.to_string())),
        Err(e) => Err(ApiTokenError::Metadata(e)),
    }
}

impl Auth {
    /// Creates an API token for `who`, expiring after `APP_SPECIFIC_TOKEN_EXPIRATION` as the
    /// config says now; see [`create`]. Robots and organizations have none.
    pub async fn create_api_token(
        &self,
        who: &Identity,
        title: &str,
    ) -> Result<(ApiToken, String), ApiTokenError> {
        if who.kind != AccountKind::User {
            return Err(ApiTokenError::NotAUser(who.name.clone()));
        }
        let settings = self.settings();
        let (lifetime, keep_expired) =
            (settings.api_token_expiration, settings.expired_api_token_gc);
        create(
            self.accounts.as_ref(),
            &who.name,
            title,
            lifetime,
            keep_expired,
        )
        .await
    }

    /// `who`'s API tokens, expired ones too, oldest first.
    pub async fn api_tokens(&self, who: &Identity) -> Result<Vec<ApiToken>, MetadataError> {
        self.accounts.api_tokens(Some(who.id)).await
    }

    /// Revokes `who`'s API token `uuid`; whether `who` had it. The next request with it is
    /// refused.
    pub async fn revoke_api_token(
        &self,
        who: &Identity,
        uuid: uuid::Uuid,
    ) -> Result<bool, MetadataError> {
        self.accounts.revoke_api_token(uuid, Some(who.id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_expires_at_its_expiry_and_never_without_one() {
        assert!(!expired(None, i64::MAX));
        assert!(!expired(Some(1000), 999));
        assert!(expired(Some(1000), 1000));
        assert!(expired(Some(1000), 1001));
    }
}
