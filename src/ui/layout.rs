//! The page shell (header, navigation, flash), response headers, and small formatting
//! helpers shared by every page.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::assets;
use super::session::Viewer;

/// Pages are built from our own markup and assets only; nothing inline may run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'; object-src 'none'";

/// Wraps finished HTML with the headers every dashboard page carries.
pub fn with_security_headers(body: String) -> Response {
    let mut response = axum::response::Html(body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · berth" }
            link rel="icon" href=(assets::url("favicon.svg"));
            link rel="stylesheet" href=(assets::url("berth.css"));
            script src=(assets::url("berth.js")) defer {}
        }
    }
}

/// A full page for `viewer`.
pub fn page(viewer: &Viewer, title: &str, main: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.topbar {
                    a.brand href="/repository/" { (logo()) span { "berth" } }
                    nav.mainnav {
                        a href="/repository/" { "Repositories" }
                        @if let Some(who) = &viewer.identity {
                            a href={ "/user/" (who.name) } { "My namespace" }
                        }
                    }
                    div.account {
                        @if let Some(who) = &viewer.identity {
                            a.whoami href={ "/user/" (who.name) } title="Signed in" {
                                (icon("user")) span { (who.name) }
                                @if who.superuser { span.pill.pill-admin { "superuser" } }
                            }
                            form.inline action="/signout" method="post" {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button.link-button type="submit" { "Sign out" }
                            }
                        } @else {
                            a.button href="/signin" { "Sign in" }
                        }
                    }
                }
                main.content {
                    @if let Some(flash) = &viewer.flash {
                        div class={ "flash " (if flash.level == "error" { "error" } else { "success" }) } role="status" {
                            p { (flash.text) }
                        }
                    }
                    (main)
                }
                footer.footer { "berth · OCI artifact registry" }
            }
        }
    };
    super::html_response(viewer, markup)
}

/// A page without a visitor (errors raised before one was known).
pub fn bare_page(title: &str, main: Markup) -> Response {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.topbar {
                    a.brand href="/repository/" { (logo()) span { "berth" } }
                    nav.mainnav { a href="/repository/" { "Repositories" } }
                }
                main.content { (main) }
            }
        }
    };
    with_security_headers(markup.into_string())
}

fn logo() -> Markup {
    PreEscaped(
        r#"<svg class="logo" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path d="M3 15h18l-2.5 5h-13z" fill="currentColor"/><path d="M7 14V8h4v6M12 14V5h5v9" fill="none" stroke="currentColor" stroke-width="1.8"/></svg>"#.to_string(),
    )
}

/// An inline SVG icon (16 px, drawn in the current text colour).
pub fn icon(name: &str) -> Markup {
    let body = match name {
        "image" => r#"<path d="M12 2l9 5v10l-9 5-9-5V7z"/><path d="M3 7l9 5 9-5M12 12v10"/>"#,
        "index" => {
            r#"<path d="M12 3l9 4.5-9 4.5-9-4.5z"/><path d="M3 12l9 4.5 9-4.5M3 16.5l9 4.5 9-4.5"/>"#
        }
        "helm-chart" => {
            r#"<circle cx="12" cy="12" r="6"/><circle cx="12" cy="12" r="2"/><path d="M12 2v4M12 18v4M2 12h4M18 12h4M4.9 4.9l2.8 2.8M16.3 16.3l2.8 2.8M4.9 19.1l2.8-2.8M16.3 7.7l2.8-2.8"/>"#
        }
        "signature" => {
            r#"<path d="M12 2l8 3v6c0 5-3.5 9-8 11-4.5-2-8-6-8-11V5z"/><path d="M8 12l3 3 5-6"/>"#
        }
        "attestation" => r#"<path d="M6 2h9l5 5v15H6z"/><path d="M15 2v5h5M9 14l2 2 4-4"/>"#,
        "sbom" => r#"<path d="M5 3h14v18H5z"/><path d="M8 8h8M8 12h8M8 16h5"/>"#,
        "encrypted-image" | "lock" => {
            r#"<rect x="5" y="11" width="14" height="10" rx="2"/><path d="M8 11V7a4 4 0 0 1 8 0v4"/>"#
        }
        "zstd-image" => r#"<path d="M13 2L4 14h7l-1 8 9-12h-7z"/>"#,
        "user" => r#"<circle cx="12" cy="8" r="4"/><path d="M4 21c0-4 4-6 8-6s8 2 8 6"/>"#,
        "team" => {
            r#"<circle cx="9" cy="8" r="3.5"/><circle cx="17" cy="9" r="2.5"/><path d="M2 20c0-3.5 3-5.5 7-5.5s7 2 7 5.5M16 14.5c3 0 6 1.5 6 4.5"/>"#
        }
        "robot" => {
            r#"<rect x="5" y="8" width="14" height="11" rx="2"/><path d="M12 4v4M9 13h.01M15 13h.01M9 16h6"/>"#
        }
        "public" => {
            r#"<circle cx="12" cy="12" r="9"/><path d="M3 12h18M12 3c3 3 3 15 0 18M12 3c-3 3-3 15 0 18"/>"#
        }
        "copy" => {
            r#"<rect x="8" y="8" width="12" height="12" rx="2"/><path d="M16 8V5a1 1 0 0 0-1-1H5a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h3"/>"#
        }
        "warning" => r#"<path d="M12 3l10 18H2z"/><path d="M12 10v5M12 18h.01"/>"#,
        // Any other OCI artifact.
        _ => r#"<path d="M12 2l8.7 5v10L12 22l-8.7-5V7z"/><circle cx="12" cy="12" r="3"/>"#,
    };
    let class = if name == "encrypted-image" || name == "lock" {
        "icon icon-lock".to_string()
    } else {
        format!("icon icon-{name}")
    };
    PreEscaped(format!(
        r#"<svg class="{class}" viewBox="0 0 24 24" width="16" height="16" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">{body}</svg>"#
    ))
}

/// Bytes as people read them (binary units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A `<time>` element: the exact instant in `datetime`, a readable UTC date as text.
pub fn time(millis: i64) -> Markup {
    let stamp = crate::api::dates::rfc3339((millis.max(0) / 1000) as u64);
    let readable = format!("{} {} UTC", &stamp[..10], &stamp[11..16]);
    html! { time datetime=(stamp) { (readable) } }
}

/// The first 12 hex digits of a digest, as people quote them.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    hex.chars().take(12).collect()
}

/// A short digest with a button that copies the whole one.
pub fn digest_cell(digest: &str) -> Markup {
    html! {
        code title=(digest) { (short_digest(digest)) }
        button.copy type="button" data-copy=(digest) title="Copy the full digest" { (icon("copy")) span.sr-only { "Copy" } }
    }
}

/// Percent-encodes a value for a URL query.
pub fn query_escape(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
