//! `/user/<name>?tab=settings`: the signed-in user's API tokens (Quay's application-specific
//! tokens): the list, a form that creates one (its secret shown once, on the page answering
//! the form), and revocation. Only the user themself sees or changes them; superusers manage
//! other users' tokens with `berth token`.

use axum::response::Response;
use maud::{html, Markup};

use super::layout::{icon, page, time};
use super::session::{Flash, Viewer};
use super::{see_other, FormData, PageError};
use crate::app::AppState;
use crate::auth::api_token::{expired, now_millis, ApiTokenError, MAX_TITLE_CHARS};
use crate::auth::Identity;
use crate::metadata::accounts::Account;

/// The address of the settings tab of `user`.
pub fn settings_url(user: &str) -> String {
    format!("/user/{user}?tab=settings")
}

/// The signed-in viewer, if they are `user`; only they manage `user`'s tokens.
fn owner<'a>(viewer: &'a Viewer, user: &Account) -> Result<&'a Identity, PageError> {
    let who = viewer.required(&settings_url(&user.name))?;
    if who.id == user.id && who.name == user.name {
        Ok(who)
    } else {
        Err(PageError::NotFound)
    }
}

/// The tabs of a user's own page.
pub fn tabs(user: &str, active: &str) -> Markup {
    html! {
        nav.tabs {
            a.active[active == "repositories"] href={ "/user/" (user) } { "Repositories" }
            a.active[active == "logs"] href={ "/user/" (user) "?tab=logs" } { "Usage Logs" }
            a.active[active == "settings"] href=(settings_url(user)) { "Settings" }
        }
    }
}

fn head(user: &str) -> Markup {
    html! {
        div.page-head {
            div {
                h1 { (icon("user")) " " (user) }
                p.sub { "User namespace" }
            }
        }
        (tabs(user, "settings"))
    }
}

/// `GET /user/{name}?tab=settings`.
pub async fn settings_tab(
    state: &AppState,
    viewer: &Viewer,
    user: &Account,
) -> Result<Response, PageError> {
    let who = owner(viewer, user)?;
    let tokens = state.auth.api_tokens(who).await?;
    let lifetime = state.auth.settings().api_token_expiration;
    let action = format!("/user/{}", user.name);
    let now = now_millis();
    let body = html! {
        (head(&user.name))
        section.panel.api-tokens {
            h2 { (icon("lock")) " API tokens" }
            p.hint {
                "Send a token as " code { "Authorization: Bearer <token>" } " to " code { "/api/v1" } " and " code { "/v2" } ". "
                @match lifetime {
                    Some(l) => { "New tokens expire after " (human_duration(l.as_secs())) "." }
                    None => { "New tokens last until they are revoked." }
                }
                " Changing your password revokes every token."
            }
            div.table-wrap {
                table.api-tokens {
                    thead { tr { th { "Title" } th { "Created" } th { "Last used" } th { "Expires" } th { span.sr-only { "Revoke" } } } }
                    tbody {
                        @if tokens.is_empty() { tr { td.empty colspan="5" { "No API tokens." } } }
                        @for t in &tokens {
                            tr.api-token data-token=(t.uuid) {
                                td { strong { (t.name) } }
                                td { (time(t.created_at)) }
                                td {
                                    @match t.last_accessed {
                                        Some(at) => { (time(at)) }
                                        None => { span.muted { "never" } }
                                    }
                                }
                                td {
                                    @match t.expires_at {
                                        Some(at) => {
                                            (time(at))
                                            @if expired(Some(at), now) { " " span.pill { "expired" } }
                                        }
                                        None => { span.muted { "never" } }
                                    }
                                }
                                td {
                                    form.inline.revoke-token method="post" action=(action) {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        input type="hidden" name="action" value="revoke-token";
                                        input type="hidden" name="token" value=(t.uuid);
                                        button.secondary type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.create-token.form-row method="post" action=(action) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="create-token";
                input type="text" name="title" placeholder="title, e.g. laptop or ci" required maxlength=(MAX_TITLE_CHARS) aria-label="Token title";
                button.primary type="submit" { "Create API token" }
            }
        }
    };
    Ok(page(viewer, &format!("{} settings", user.name), body))
}

/// Seconds as Quay writes durations, in the largest unit that divides them.
fn human_duration(secs: u64) -> String {
    for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs >= size && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// The forms of the settings tab (`create-token`, `revoke-token`), posted to `/user/{name}`
/// with a checked CSRF token. A new token's secret is on the page that answers, and nowhere
/// else: berth keeps only its hash, and a cookie is no place for a secret.
pub async fn act(
    state: &AppState,
    viewer: &mut Viewer,
    user: &Account,
    action: &str,
    form: &FormData,
) -> Result<Response, PageError> {
    let who = owner(viewer, user)?.clone();
    let back = settings_url(&user.name);
    let flash = match action {
        "create-token" => match state
            .auth
            .create_api_token(&who, form.get("title").unwrap_or(""))
            .await
        {
            Ok((token, secret)) => {
                tracing::info!(user = %who.name, token = %token.uuid, "API token created");
                state.usage.record(
                    viewer
                        .event("create_app_specific_token")
                        .namespace(&who.name)
                        .detail("app_specific_token_title", token.name.as_str())
                        .detail("app_specific_token", token.uuid.to_string()),
                );
                return Ok(created(viewer, &back, &token.name, &secret));
            }
            Err(ApiTokenError::Metadata(e)) => return Err(e.into()),
            Err(e) => Flash::error(e.to_string()),
        },
        _ => {
            let uuid = form.required("token")?;
            let uuid = uuid::Uuid::parse_str(uuid).map_err(|_| PageError::NotFound)?;
            if state.auth.revoke_api_token(&who, uuid).await? {
                tracing::info!(user = %who.name, token = %uuid, "API token revoked");
                state.usage.record(
                    viewer
                        .event("revoke_app_specific_token")
                        .namespace(&who.name)
                        .detail("app_specific_token", uuid.to_string()),
                );
                Flash::success("API token revoked: the next request with it is refused.")
            } else {
                Flash::error("There is no such API token (already revoked?).")
            }
        }
    };
    viewer.leave_flash(&flash);
    Ok(see_other(viewer, &back))
}

/// The answer to creating a token: its secret, shown this once.
fn created(viewer: &Viewer, back: &str, title: &str, secret: &str) -> Response {
    let body = html! {
        div.flash.success role="status" {
            p { "Created API token " strong { (title) } ". Send it as " code { "Authorization: Bearer <token>" } "." }
            div.secret-box {
                code.api-token-secret { (secret) }
                button.copy type="button" data-copy=(secret) { "Copy" }
            }
            p.hint { "This token is shown only once: berth keeps only a hash of it." }
        }
        p { a href=(back) { "Back to your API tokens" } }
    };
    page(viewer, "API token created", body)
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn durations_read_as_in_the_config() {
        assert_eq!(human_duration(30 * 86_400), "30d");
        assert_eq!(human_duration(14 * 86_400), "2w");
        assert_eq!(human_duration(5400), "90m");
        assert_eq!(human_duration(61), "61s");
    }
}
