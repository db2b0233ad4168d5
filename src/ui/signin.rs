//! `/signin` and `/signout`.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;

use super::layout::page;
use super::session::{Flash, Viewer};
use super::{see_other, FormData, PageError};
use crate::app::AppState;
use crate::auth::AuthError;

/// Where to go after signing in: a path on this site only, never another origin.
fn safe_next(next: Option<&str>) -> String {
    super::redirect::local_path_or_home(next).into_owned()
}

fn form_page(viewer: &Viewer, next: &str, username: &str, error: Option<&str>) -> Response {
    let body = html! {
        section.signin.panel {
            h1 { "Sign in to berth" }
            @if let Some(error) = error {
                div.flash.error role="alert" { p { (error) } }
            }
            form.stack action="/signin" method="post" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="next" value=(next);
                label for="username" { "Username" }
                input #username type="text" name="username" value=(username) autocomplete="username" required autofocus;
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button.primary type="submit" { "Sign in" }
            }
            p.hint { "Robot accounts use their token with registry clients, not here." }
        }
    };
    page(viewer, "Sign in", body)
}

/// `GET /signin`.
pub async fn form(viewer: Viewer, RawQuery(query): RawQuery) -> Response {
    // Read by hand: a query string that does not parse is no reason to refuse the form.
    let next = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned())
    });
    let next = safe_next(next.as_deref());
    if viewer.identity.is_some() {
        return see_other(&viewer, &next);
    }
    form_page(&viewer, &next, "", None)
}

/// `POST /signin`: checks the password with the same rate limits as registry logins.
pub async fn submit(
    State(state): State<AppState>,
    mut viewer: Viewer,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PageError> {
    let next = safe_next(form.get("next"));
    let username = form.get("username").unwrap_or("").trim().to_string();
    if viewer.identity.is_some() {
        return Ok(see_other(&viewer, &next));
    }
    viewer.check_form(&headers, form.get("csrf"))?;
    let password = form.get("password").unwrap_or("");
    let failure = match state.auth.login(&username, password, viewer.client).await {
        Ok(identity) if identity.kind == crate::metadata::accounts::AccountKind::User => {
            viewer.sign_in(&state, &identity).await?;
            tracing::info!(user = %identity.name, "dashboard sign-in");
            return Ok(see_other(&viewer, &next));
        }
        Ok(_) => "Robot accounts cannot sign in to the dashboard.",
        Err(AuthError::TooManyAttempts) => "Too many failed sign-ins; wait a minute and try again.",
        Err(AuthError::Metadata(e)) => return Err(e.into()),
        Err(e) => {
            state
                .usage
                .login_failure(Some(&username), viewer.client, "quayauth", &e.to_string());
            "Invalid username or password."
        }
    };
    let mut response = form_page(&viewer, &next, &username, Some(failure));
    *response.status_mut() = if failure.starts_with("Too many") {
        axum::http::StatusCode::TOO_MANY_REQUESTS
    } else {
        axum::http::StatusCode::UNAUTHORIZED
    };
    Ok(response)
}

/// `POST /signout`.
pub async fn sign_out(
    State(state): State<AppState>,
    mut viewer: Viewer,
    headers: HeaderMap,
    form: FormData,
) -> Result<Response, PageError> {
    if viewer.identity.is_none() {
        return Ok(see_other(&viewer, "/repository/"));
    }
    viewer.check_form(&headers, form.get("csrf"))?;
    viewer.sign_out(&state).await?;
    viewer.leave_flash(&Flash::success("You are signed out."));
    Ok(see_other(&viewer, "/repository/"))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next(Some("/repository/a/b?tab=tags")),
            "/repository/a/b?tab=tags"
        );
        for bad in [
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/\t/evil.example",
            "evil",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
