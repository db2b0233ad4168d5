//! `/repository/<ns>/<repo>/manifest/<digest>`: everything about one manifest, and
//! `/repository/<ns>/<repo>/manifest/<digest>/raw`: its stored bytes, as they are.
//!
//! A manifest may be megabytes of JSON that anyone can open when it is public, so the page
//! costs about the same whatever its size: long lists (layers, index children, annotations,
//! referrers) are shown a page at a time with their totals, long strings are clipped, the raw
//! view shows the first [`RAW_PREVIEW_BYTES`] of the stored bytes (the rest is a download
//! away), and pages are built a few at a time ([`super::RenderGate`]).

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, PreEscaped};
use oci::{Digest, Reference};

use super::kinds::KindView;
use super::layout::{digest_cell, human_size, page, query_escape, short_digest, time};
use super::outline::{self, Annotation, Descriptor, Outline, Platform, Window, PAGE_SIZE};
use super::render_gate;
use super::repository::RepoAccess;
use super::session::Viewer;
use super::PageError;
use crate::app::AppState;

/// How much of the stored manifest the page shows inline.
pub const RAW_PREVIEW_BYTES: usize = 64 * 1024;
/// Tags named in the facts; the rest are counted.
const TAGS_SHOWN: usize = 50;
/// Longest media type, digest or annotation key shown (in characters).
const SHORT_TEXT: usize = 256;
/// Longest annotation value shown.
const LONG_TEXT: usize = 1024;
/// Highest page number a link may ask for.
const MAX_PAGE: u32 = 1_000_000;

/// The long lists of a manifest page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Layers,
    Manifests,
    Annotations,
    Referrers,
}

impl List {
    const ALL: [List; 4] = [
        List::Layers,
        List::Manifests,
        List::Annotations,
        List::Referrers,
    ];

    /// The section's id, and the query parameter (`<key>_page`) that pages it.
    fn key(self) -> &'static str {
        match self {
            List::Layers => "layers",
            List::Manifests => "manifests",
            List::Annotations => "annotations",
            List::Referrers => "referrers",
        }
    }
}

/// The page (from 1) of each list, from `?layers_page=`, `?manifests_page=`,
/// `?annotations_page=` and `?referrers_page=`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListPages {
    pub layers: Option<u32>,
    pub manifests: Option<u32>,
    pub annotations: Option<u32>,
    pub referrers: Option<u32>,
}

impl ListPages {
    fn get(&self, list: List) -> u32 {
        let asked = match list {
            List::Layers => self.layers,
            List::Manifests => self.manifests,
            List::Annotations => self.annotations,
            List::Referrers => self.referrers,
        };
        asked.unwrap_or(1).clamp(1, MAX_PAGE)
    }

    fn outline(&self) -> outline::Pages {
        let from_zero = |list| (self.get(list) - 1) as usize;
        outline::Pages {
            layers: from_zero(List::Layers),
            manifests: from_zero(List::Manifests),
            annotations: from_zero(List::Annotations),
        }
    }

    /// This page's URL with `list` on page `to` and the other lists where they are.
    fn url(&self, base: &str, list: List, to: u32) -> String {
        let mut url = base.to_string();
        let mut sep = '?';
        for l in List::ALL {
            let n = if l == list { to } else { self.get(l) };
            if n > 1 {
                url.push_str(&format!("{sep}{}_page={n}", l.key()));
                sep = '&';
            }
        }
        url.push('#');
        url.push_str(list.key());
        url
    }
}

/// `s`, cut after `max` characters with an ellipsis.
fn clip(s: &str, max: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max) {
        Some((at, _)) => Cow::Owned(format!("{}…", &s[..at])),
        None => Cow::Borrowed(s),
    }
}

fn text<'a>(t: &'a Option<outline::Text<'_>>) -> &'a str {
    t.as_deref().unwrap_or("")
}

fn platform(p: &Platform) -> String {
    let mut s = format!("{}/{}", text(&p.os), text(&p.architecture));
    if let Some(v) = &p.variant {
        s.push('/');
        s.push_str(v);
    }
    if let Some(v) = &p.os_version {
        s.push_str(&format!(" ({})", &**v));
    }
    s
}

/// Annotations as a definition list, with a count of those not shown.
fn annotations(window: &Window<Annotation>, count_rest: bool) -> Markup {
    let rest = window.total.saturating_sub(window.items.len());
    html! {
        @if !window.items.is_empty() {
            dl.annotations {
                @for (key, value) in &window.items {
                    dt { (clip(key, SHORT_TEXT)) }
                    dd { (clip(value, LONG_TEXT)) }
                }
            }
        }
        @if count_rest && rest > 0 {
            p.hint.more { "and " (rest) " more (see the raw manifest)" }
        }
    }
}

/// The pager of one list: where this page is in it, and links to the neighbours.
fn pager(
    pages: &ListPages,
    base: &str,
    list: List,
    total: usize,
    first: usize,
    shown: usize,
) -> Markup {
    let page_no = pages.get(list);
    let has_next = first + shown < total;
    html! {
        @if total > PAGE_SIZE || page_no > 1 {
            nav.pager.list-pager data-list=(list.key()) aria-label={ "Pages of " (list.key()) } {
                @if page_no > 1 {
                    a rel="prev" href=(pages.url(base, list, page_no - 1)) { "← Previous" }
                }
                @if shown > 0 {
                    span.range { "Showing " (first + 1) "–" (first + shown) " of " (total) }
                } @else {
                    span.range { "Nothing on this page; there are " (total) "." }
                    a href=(pages.url(base, list, 1)) { "First page" }
                }
                @if has_next {
                    a rel="next" href=(pages.url(base, list, page_no + 1)) { "Next →" }
                }
            }
        }
    }
}

/// A link to the page of the manifest `digest` names, when it is a digest.
fn manifest_link(base: &str, digest: &str, full: bool) -> Markup {
    let shown = if full {
        clip(digest, SHORT_TEXT).into_owned()
    } else {
        short_digest(digest)
    };
    html! {
        @if let Ok(d) = digest.parse::<Digest>() {
            a href={ (base) "/manifest/" (d) } { code { (shown) } }
        } @else {
            code { (shown) }
        }
    }
}

fn descriptor_digest<'a>(d: &'a Descriptor) -> &'a str {
    text(&d.digest)
}

/// The stored bytes as the text of a `<pre>`: a newline first, since HTML drops the one that
/// follows `<pre>`, and carriage returns as references, since HTML turns them into newlines.
fn raw_text(shown: &str) -> Markup {
    html! {
        "\n"
        @for (i, part) in shown.split('\r').enumerate() {
            @if i > 0 { (PreEscaped("&#13;")) }
            (part)
        }
    }
}

/// The first `max` bytes of `stored` as text, cut at a character boundary.
fn raw_preview(stored: &[u8], max: usize) -> (Cow<'_, str>, bool) {
    let text = String::from_utf8_lossy(stored);
    if text.len() <= max {
        return (text, false);
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let shown = match text {
        Cow::Borrowed(t) => Cow::Borrowed(&t[..cut]),
        Cow::Owned(t) => Cow::Owned(t[..cut].to_string()),
    };
    (shown, true)
}

/// The manifest page.
pub async fn show(
    state: &AppState,
    viewer: &Viewer,
    access: &RepoAccess,
    digest: &Digest,
    pages: ListPages,
) -> Result<Response, PageError> {
    let _permit = state
        .renders
        .enter(render_gate::WAIT)
        .await
        .ok_or(PageError::Busy)?;
    let repo = &access.repo;
    let stored = state
        .registry
        .get_manifest(repo, &Reference::Digest(digest.clone()))
        .await?;
    let summary = state
        .registry
        .manifest_summary(repo, digest)
        .await?
        .ok_or(PageError::NotFound)?;
    let outline = Outline::read(&stored.content, pages.outline());
    let readable = outline.is_ok();
    let outline = outline.unwrap_or_default();
    let view = KindView::new(
        &summary.kind,
        summary.artifact_type.as_deref(),
        summary.details.as_deref(),
    );
    let referrers_page = pages.get(List::Referrers);
    let (referrers, referrer_total) = state
        .registry
        .describers_page(
            repo,
            digest,
            (referrers_page - 1).saturating_mul(PAGE_SIZE as u32),
            PAGE_SIZE as u32,
        )
        .await?;
    let referrer_first = (referrers_page as usize - 1) * PAGE_SIZE;
    // Signatures, attestations and SBOMs are not themselves signed for the status (issue 19).
    let signable = !matches!(summary.kind.as_str(), "signature" | "attestation" | "sbom");
    let trust = if signable {
        let verdict = super::trust::store(state)
            .verdicts(repo, std::slice::from_ref(digest))
            .await?
            .into_iter()
            .next();
        let signed = verdict.is_some()
            || state
                .registry
                .describers(repo, std::slice::from_ref(digest))
                .await?
                .iter()
                .any(|d| d.kind == "signature");
        Some(super::trust::signatures_section(
            &access.url(),
            verdict.as_ref(),
            signed,
        ))
    } else {
        None
    };
    let base = access.url();
    let here = format!("{base}/manifest/{digest}");
    let raw_url = format!("{here}/raw");
    let (raw_shown, raw_cut) = raw_preview(&stored.content, RAW_PREVIEW_BYTES);
    let body = html! {
        (access.header("tags"))
        section.panel {
            h2 { "Manifest " code { (short_digest(&digest.to_string())) } }
            dl.facts.manifest-facts {
                dt { "Digest" }
                dd {
                    code { (digest) } " "
                    button.copy type="button" data-copy=(digest) title="Copy the digest" { (super::layout::icon("copy")) span.sr-only { "Copy" } }
                }
                dt { "Kind" } dd { (view.cell()) }
                dt { "Media type" } dd { code { (clip(&stored.media_type, SHORT_TEXT)) } }
                @if let Some(at) = &outline.artifact_type {
                    dt { "Artifact type" } dd { code { (clip(at, SHORT_TEXT)) } }
                }
                @if let Some(config) = &outline.config {
                    dt { "Config" }
                    dd {
                        code { (clip(text(&config.media_type), SHORT_TEXT)) } " · " (human_size(config.size.unwrap_or(0)))
                        " · " code { (short_digest(descriptor_digest(config))) }
                    }
                }
                dt { "Total size" } dd { (human_size(summary.total_size)) }
                dt { "Stored size" } dd { (human_size(stored.content.len() as u64)) }
                dt { "Pushed" } dd { (time(summary.created_at)) }
                dt { "Tags" }
                dd.manifest-tags {
                    @if summary.tags.is_empty() { span.muted { "none" } }
                    @for (i, tag) in summary.tags.iter().take(TAGS_SHOWN).enumerate() {
                        @if i > 0 { ", " }
                        a href={ (base) "?tab=tags&signatures=1&filter=" (query_escape(tag)) } { (tag) }
                    }
                    @if summary.tags.len() > TAGS_SHOWN {
                        span.muted { " and " (summary.tags.len() - TAGS_SHOWN) " more" }
                    }
                }
                @if let Some(target) = &summary.signed {
                    dt { "Describes" }
                    dd { (manifest_link(&base, &target.to_string(), true)) }
                }
            }
            @if !readable {
                p.hint { "berth cannot read the structure of this manifest; its stored bytes are below." }
            }
        }
        @if summary.kind == "helm-chart" {
            section.panel.chart {
                h2 { "Helm chart" }
                dl.facts {
                    @for (field, label) in [("name", "Name"), ("version", "Version"), ("appVersion", "App version"), ("description", "Description")] {
                        dt { (label) }
                        dd data-field=(field) { (view.chart_field(field).unwrap_or("")) }
                    }
                }
            }
        }
        @if outline.layers.total > 0 {
            section.panel #layers {
                h2 { "Layers " span.count { "(" (outline.layers.total) ")" } }
                (pager(&pages, &here, List::Layers, outline.layers.total, outline.layers.first, outline.layers.items.len()))
                div.table-wrap {
                    table.layers {
                        thead { tr { th { "#" } th { "Media type" } th.num { "Size" } th { "Digest" } th { "Annotations" } } }
                        tbody {
                            @for (i, layer) in outline.layers.items.iter().enumerate() {
                                tr.layer {
                                    td { (outline.layers.first + i + 1) }
                                    td { code { (clip(text(&layer.media_type), SHORT_TEXT)) } }
                                    td.num { (human_size(layer.size.unwrap_or(0))) }
                                    td.digest { (digest_cell(&clip(descriptor_digest(layer), SHORT_TEXT))) }
                                    td { (annotations(&layer.annotations.0, true)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if outline.manifests.total > 0 {
            section.panel #manifests {
                h2 { "Manifests in this index " span.count { "(" (outline.manifests.total) ")" } }
                (pager(&pages, &here, List::Manifests, outline.manifests.total, outline.manifests.first, outline.manifests.items.len()))
                div.table-wrap {
                    table.children {
                        thead { tr { th { "Platform" } th { "Media type" } th.num { "Size" } th { "Digest" } } }
                        tbody {
                            @for child in &outline.manifests.items {
                                tr.child {
                                    td { @if let Some(p) = &child.platform { (clip(&platform(p), SHORT_TEXT)) } @else { span.muted { "any" } } }
                                    td { code { (clip(text(&child.media_type), SHORT_TEXT)) } }
                                    td.num { (human_size(child.size.unwrap_or(0))) }
                                    td.digest { (manifest_link(&base, descriptor_digest(child), false)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(subject) = &outline.subject {
            section.panel.subject {
                h2 { "Subject" }
                p { "This manifest refers to " (manifest_link(&base, descriptor_digest(subject), true)) "." }
            }
        }
        @if outline.annotations.total > 0 {
            section.panel #annotations {
                h2 { "Annotations " span.count { "(" (outline.annotations.total) ")" } }
                (pager(&pages, &here, List::Annotations, outline.annotations.total, outline.annotations.first, outline.annotations.items.len()))
                (annotations(&outline.annotations, false))
            }
        }
        @if let Some(trust) = &trust { (trust) }
        section.panel.referrers #referrers {
            h2 {
                "Signatures, attestations and other referrers"
                @if referrer_total > 0 { " " span.count { "(" (referrer_total) ")" } }
            }
            @if referrer_total == 0 {
                p.muted { "Nothing in this repository signs or describes this manifest." }
            } @else {
                (pager(&pages, &here, List::Referrers, referrer_total as usize, referrer_first, referrers.len()))
                div.table-wrap {
                    table {
                        thead { tr { th { "Kind" } th { "Tag" } th { "Digest" } th.num { "Size" } } }
                        tbody {
                            @for r in &referrers {
                                @let rv = KindView::new(&r.kind, r.artifact_type.as_deref(), None);
                                tr.referrer data-kind=(rv.key) {
                                    td { (rv.cell()) }
                                    td { @if let Some(t) = &r.tag { (t) } @else { span.muted { "by digest" } } }
                                    td { (manifest_link(&base, &r.digest.to_string(), false)) }
                                    td.num { (human_size(r.total_size)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.panel.raw #raw {
            h2 { "Raw manifest" }
            p.hint.raw-note {
                "The manifest exactly as stored (" (human_size(stored.content.len() as u64)) ")."
                @if raw_cut {
                    " Only the first " (human_size(RAW_PREVIEW_BYTES as u64)) " are shown here."
                }
                " "
                a.raw-download href=(raw_url) { "Download it" }
            }
            pre.raw-manifest.truncated[raw_cut] { (raw_text(&raw_shown)) }
        }
    };
    Ok(page(viewer, &format!("{} {}", repo, digest), body))
}

/// `GET .../manifest/<digest>/raw`: the stored bytes with the manifest's media type, as
/// `GET /v2/<repo>/manifests/<digest>` answers them, for whoever may pull the repository.
pub async fn raw(
    state: &AppState,
    access: &RepoAccess,
    digest: &Digest,
) -> Result<Response, PageError> {
    let _permit = state
        .renders
        .enter(render_gate::WAIT)
        .await
        .ok_or(PageError::Busy)?;
    let stored = state
        .registry
        .get_manifest(&access.repo, &Reference::Digest(digest.clone()))
        .await?;
    let content_type = HeaderValue::from_str(&stored.media_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let file_name = format!(
        "attachment; filename=\"{}.json\"",
        digest.to_string().replace(':', "-")
    );
    let mut response = (StatusCode::OK, stored.content).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    if let Ok(v) = HeaderValue::from_str(&file_name) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("docker-content-digest", v);
    }
    // The bytes are the pusher's: never let a browser run or sniff them on this origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clipping_and_previews_respect_characters() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
        assert_eq!(clip("ééé", 2), "éé…");
        let (shown, cut) = raw_preview("aé".as_bytes(), 2);
        assert_eq!((&*shown, cut), ("a", true));
        let (shown, cut) = raw_preview(b"{}", 2);
        assert_eq!((&*shown, cut), ("{}", false));
    }

    #[test]
    fn carriage_returns_survive_html() {
        let html = raw_text("{\r\n\"a\":\"<b>\"}").into_string();
        assert_eq!(html, "\n{&#13;\n&quot;a&quot;:&quot;&lt;b&gt;&quot;}");
    }

    #[test]
    fn pager_urls_keep_the_other_lists() {
        let pages = ListPages {
            layers: Some(3),
            referrers: Some(2),
            ..ListPages::default()
        };
        assert_eq!(
            pages.url("/m", List::Layers, 4),
            "/m?layers_page=4&referrers_page=2#layers"
        );
        assert_eq!(
            pages.url("/m", List::Referrers, 1),
            "/m?layers_page=3#referrers"
        );
        let far = ListPages {
            annotations: Some(u32::MAX),
            ..ListPages::default()
        };
        assert_eq!(far.get(List::Annotations), MAX_PAGE);
    }
}
