//! `/repository/<ns>/<repo>/manifest/<digest>`: everything about one manifest.

use axum::response::Response;
use maud::{html, Markup};
use oci::{Digest, Reference};
use serde_json::Value;

use super::kinds::KindView;
use super::layout::{digest_cell, human_size, page, query_escape, time};
use super::repository::RepoAccess;
use super::session::Viewer;
use super::PageError;
use crate::app::AppState;

fn annotations(value: &Value) -> Markup {
    html! {
        @if let Some(map) = value.as_object().filter(|m| !m.is_empty()) {
            dl.annotations {
                @for (key, v) in map {
                    dt { (key) }
                    dd { @match v.as_str() { Some(s) => (s), None => (v.to_string()) } }
                }
            }
        }
    }
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn platform(p: &Value) -> String {
    let mut s = format!("{}/{}", text(p, "os"), text(p, "architecture"));
    if let Some(v) = p["variant"].as_str() {
        s.push('/');
        s.push_str(v);
    }
    if let Some(v) = p["os.version"].as_str() {
        s.push_str(&format!(" ({v})"));
    }
    s
}

/// The manifest page.
pub async fn show(
    state: &AppState,
    viewer: &Viewer,
    access: &RepoAccess,
    digest: &Digest,
) -> Result<Response, PageError> {
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
    let parsed: Value = serde_json::from_slice(&stored.content).unwrap_or(Value::Null);
    let pretty = serde_json::to_string_pretty(&parsed)
        .unwrap_or_else(|_| String::from_utf8_lossy(&stored.content).into_owned());
    let view = KindView::new(
        &summary.kind,
        summary.artifact_type.as_deref(),
        summary.details.as_deref(),
    );
    let referrers = state
        .registry
        .describers(repo, std::slice::from_ref(digest))
        .await?;
    let base = access.url();
    let manifest_url = |d: &str| format!("{base}/manifest/{d}");
    let config = &parsed["config"];
    let layers = parsed["layers"].as_array().cloned().unwrap_or_default();
    let children = parsed["manifests"].as_array().cloned().unwrap_or_default();
    let body = html! {
        (access.header("tags"))
        section.panel {
            h2 { "Manifest " code { (super::layout::short_digest(&digest.to_string())) } }
            dl.facts.manifest-facts {
                dt { "Digest" }
                dd {
                    code { (digest) } " "
                    button.copy type="button" data-copy=(digest) title="Copy the digest" { (super::layout::icon("copy")) span.sr-only { "Copy" } }
                }
                dt { "Kind" } dd { (view.cell()) }
                dt { "Media type" } dd { code { (stored.media_type) } }
                @if let Some(at) = parsed["artifactType"].as_str() {
                    dt { "Artifact type" } dd { code { (at) } }
                }
                @if config.is_object() {
                    dt { "Config" }
                    dd {
                        code { (text(config, "mediaType")) } " · " (human_size(config["size"].as_u64().unwrap_or(0)))
                        " · " code { (super::layout::short_digest(text(config, "digest"))) }
                    }
                }
                dt { "Total size" } dd { (human_size(summary.total_size)) }
                dt { "Pushed" } dd { (time(summary.created_at)) }
                dt { "Tags" }
                dd.manifest-tags {
                    @if summary.tags.is_empty() { span.muted { "none" } }
                    @for (i, tag) in summary.tags.iter().enumerate() {
                        @if i > 0 { ", " }
                        a href={ (base) "?tab=tags&signatures=1&filter=" (query_escape(tag)) } { (tag) }
                    }
                }
                @if let Some(target) = &summary.signed {
                    dt { "Describes" }
                    dd { a href=(manifest_url(&target.to_string())) { code { (target.to_string()) } } }
                }
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
        @if !layers.is_empty() {
            section.panel {
                h2 { "Layers" }
                div.table-wrap {
                    table.layers {
                        thead { tr { th { "#" } th { "Media type" } th.num { "Size" } th { "Digest" } th { "Annotations" } } }
                        tbody {
                            @for (i, layer) in layers.iter().enumerate() {
                                tr.layer {
                                    td { (i + 1) }
                                    td { code { (text(layer, "mediaType")) } }
                                    td.num { (human_size(layer["size"].as_u64().unwrap_or(0))) }
                                    td.digest { (digest_cell(text(layer, "digest"))) }
                                    td { (annotations(&layer["annotations"])) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !children.is_empty() {
            section.panel {
                h2 { "Manifests in this index" }
                div.table-wrap {
                    table.children {
                        thead { tr { th { "Platform" } th { "Media type" } th.num { "Size" } th { "Digest" } } }
                        tbody {
                            @for child in &children {
                                tr.child {
                                    td { @if child["platform"].is_object() { (platform(&child["platform"])) } @else { span.muted { "any" } } }
                                    td { code { (text(child, "mediaType")) } }
                                    td.num { (human_size(child["size"].as_u64().unwrap_or(0))) }
                                    td.digest {
                                        a href=(manifest_url(text(child, "digest"))) { code { (super::layout::short_digest(text(child, "digest"))) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if parsed["subject"].is_object() {
            section.panel.subject {
                h2 { "Subject" }
                p { "This manifest refers to " a href=(manifest_url(text(&parsed["subject"], "digest"))) { code { (text(&parsed["subject"], "digest")) } } "." }
            }
        }
        @if parsed["annotations"].is_object() {
            section.panel {
                h2 { "Annotations" }
                (annotations(&parsed["annotations"]))
            }
        }
        section.panel.referrers {
            h2 { "Signatures, attestations and other referrers" }
            @if referrers.is_empty() {
                p.muted { "Nothing in this repository signs or describes this manifest." }
            } @else {
                div.table-wrap {
                    table {
                        thead { tr { th { "Kind" } th { "Tag" } th { "Digest" } th.num { "Size" } } }
                        tbody {
                            @for r in &referrers {
                                @let rv = KindView::new(&r.kind, r.artifact_type.as_deref(), None);
                                tr.referrer data-kind=(rv.key) {
                                    td { (rv.cell()) }
                                    td { @if let Some(t) = &r.tag { (t) } @else { span.muted { "by digest" } } }
                                    td { a href=(manifest_url(&r.digest.to_string())) { code { (super::layout::short_digest(&r.digest.to_string())) } } }
                                    td.num { (human_size(r.total_size)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.panel {
            h2 { "Raw manifest" }
            pre.raw-manifest { (pretty) }
        }
    };
    Ok(page(viewer, &format!("{} {}", repo, digest), body))
}
