//! Signature trust in the dashboard (issue 19): the status badge of a tag, the Signatures
//! section of a manifest page, and the "Trusted keys" and "Trust policy" panels of an
//! organization's and a repository's settings with the forms they post.
//!
//! Statuses are read from the stored verdicts (one batch read per Tags page), never computed
//! here. The forms post to the page they belong to like the settings' others, with the CSRF
//! token, and work without JavaScript; the caller checks admin rights before [`act`].

use maud::{html, Markup};

use super::layout::{icon, short_digest, time};
use super::session::{Flash, Viewer};
use super::{FormData, PageError};
use crate::metadata::trust::{Requirement, StoredKey, StoredVerdict, TrustScope, TrustStore};
use crate::metadata::MetadataError;
use crate::trust::{CheckResult, KeyKind, SignatureCheck, Status};
use crate::usage_log::UsageLog;

/// The store of keys, policies and verdicts behind the pages.
pub fn store(state: &crate::app::AppState) -> &dyn TrustStore {
    state.trust.store()
}

/// Longest PEM the add form takes (a certificate chain is a few KiB).
pub const MAX_PEM: usize = 64 * 1024;

/// The words of a status, as a tag's badge and a manifest's section say it; `None` for
/// unsigned, which shows nothing.
pub fn status_text(status: Status, keys: &[String]) -> Option<String> {
    match status {
        Status::Verified => Some(format!("verified by {}", keys.join(", "))),
        Status::Untrusted => Some("signed, untrusted key".to_string()),
        Status::Invalid => Some("invalid signature".to_string()),
        Status::Unsigned => None,
    }
}

/// The badge of a tag whose manifest has a verdict, linking to the manifest's Signatures
/// section; nothing when it is unsigned. The words carry the status (the colour only repeats it).
pub fn badge(manifest_url: &str, verdict: &StoredVerdict) -> Option<Markup> {
    let words = status_text(verdict.verdict.status, &verdict.verdict.keys)?;
    let status = verdict.verdict.status.as_str();
    let title = if verdict.current {
        format!("Signature status: {words}")
    } else {
        format!("Signature status: {words} (being verified again)")
    };
    Some(html! {
        a.trust-badge data-status=(status) href={ (manifest_url) "#signatures" } title=(title) {
            (icon(if verdict.verdict.status == Status::Verified { "signature" } else { "warning" }))
            (words)
        }
    })
}

fn check_result(check: &SignatureCheck) -> Markup {
    html! {
        @match &check.result {
            CheckResult::Verified { key } => {
                span.trust-result data-status="verified" { "verified" } " by key " strong { (key) }
            }
            CheckResult::Untrusted => {
                span.trust-result data-status="untrusted" { "untrusted" } " (no trusted key made it)"
            }
            CheckResult::Invalid { reason } => {
                span.trust-result data-status="invalid" { "invalid" } ": " (reason)
            }
        }
    }
}

/// The Signatures section of a manifest page: the overall status and every signature's check.
/// `verdict` is the stored one (absent: never verified); `signed` says whether the repository
/// holds signatures of this manifest, so that one not yet verified says so.
pub fn signatures_section(base: &str, verdict: Option<&StoredVerdict>, signed: bool) -> Markup {
    let pending = match verdict {
        Some(v) => !v.current,
        None => signed,
    };
    html! {
        section.panel.signatures #signatures {
            h2 { (icon("signature")) " Signatures" }
            @match verdict.filter(|v| v.verdict.status != Status::Unsigned) {
                None => {
                    @if pending {
                        p.trust-status data-status="pending" { "This manifest's signatures are being verified." }
                    } @else {
                        p.trust-status.muted data-status="unsigned" { "Not signed: no signature in this repository names this manifest." }
                    }
                }
                Some(v) => {
                    p.trust-status data-status=(v.verdict.status.as_str()) {
                        "Status: "
                        strong { (status_text(v.verdict.status, &v.verdict.keys).unwrap_or_default()) }
                        @if pending { " " span.being-verified { "(being verified: a signature or a trusted key changed since)" } }
                        " · checked " (time(v.computed_at))
                    }
                    div.table-wrap {
                        table.signature-checks {
                            thead { tr { th { "Format" } th { "Signer" } th { "Result" } th { "Signature" } } }
                            tbody {
                                @if v.verdict.checks.is_empty() { tr { td.empty colspan="4" { "No signatures." } } }
                                @for c in &v.verdict.checks {
                                    tr.signature-check data-status=(match c.result { CheckResult::Verified { .. } => "verified", CheckResult::Untrusted => "untrusted", CheckResult::Invalid { .. } => "invalid" }) {
                                        td { (c.format.label()) }
                                        td.signer { @if let Some(s) = &c.signer { (s) } @else { span.muted { "not stated" } } }
                                        td { (check_result(c)) }
                                        td { a href={ (base) "/manifest/" (c.signature) } { code { (short_digest(&c.signature.to_string())) } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What the settings panels show about a policy set higher up (the repository's organization).
pub struct Inherited<'a> {
    pub namespace: &'a str,
    pub require: Requirement,
}

/// The "Trusted keys" and "Trust policy" panels of `scope`, for an admin; forms post to `action`.
pub async fn settings(
    store: &dyn TrustStore,
    viewer: &Viewer,
    scope: &TrustScope,
    action: &str,
) -> Result<Markup, PageError> {
    let keys = store.trust_keys(scope).await?;
    let own = store.trust_policy(scope).await?;
    let namespace = match scope {
        TrustScope::Repository(repo) => Some(repo.namespace().to_string()),
        TrustScope::Namespace(_) => None,
    };
    let inherited = match &namespace {
        Some(ns) => Some(Inherited {
            namespace: ns,
            require: store
                .trust_policy(&TrustScope::Namespace(ns.clone()))
                .await?,
        }),
        None => None,
    };
    Ok(html! {
        (keys_panel(viewer, scope, action, &keys))
        (policy_panel(viewer, scope, action, own, inherited.as_ref()))
    })
}

fn scope_words(scope: &TrustScope) -> &'static str {
    match scope {
        TrustScope::Namespace(_) => "organization",
        TrustScope::Repository(_) => "repository",
    }
}

/// The list of a scope's keys with their Delete buttons, and the form adding one.
pub fn keys_panel(viewer: &Viewer, scope: &TrustScope, action: &str, keys: &[StoredKey]) -> Markup {
    html! {
        section.panel.trusted-keys #trusted-keys {
            h2 { (icon("signature")) " Trusted keys" }
            p.hint {
                "Signatures made with these keys count as verified in this " (scope_words(scope))
                @if matches!(scope, TrustScope::Repository(_)) { " (its organization's keys count too)" }
                ". cosign: a public key (ECDSA, RSA, Ed25519); notation: a trust-store certificate."
            }
            div.table-wrap {
                table.trust-keys {
                    thead { tr { th { "Name" } th { "Kind" } th { "Fingerprint" } th { "Description" } th { "Created" } th { span.sr-only { "Actions" } } } }
                    tbody {
                        @if keys.is_empty() { tr { td.empty colspan="6" { "No trusted keys." } } }
                        @for k in keys {
                            tr.trust-key data-key=(k.name) {
                                td { strong { (k.name) } }
                                td { (k.kind.as_str()) }
                                td.fingerprint { code title=(k.fingerprint) { (short_digest(&k.fingerprint)) } }
                                td { (k.description) }
                                td { (time(k.created_at)) }
                                td {
                                    form.inline.delete-trust-key method="post" action=(action) {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        input type="hidden" name="action" value="delete-trust-key";
                                        input type="hidden" name="id" value=(k.id);
                                        button.danger type="submit" aria-label={ "Delete key " (k.name) } { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h3 { "Add a key" }
            form.add-trust-key.stack method="post" action=(action) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="add-trust-key";
                label for="trust-key-name" { "Name" }
                input #trust-key-name type="text" name="name" required maxlength="64" pattern="[A-Za-z0-9._\\-]{1,64}" placeholder="release";
                label for="trust-key-kind" { "Kind" }
                select #trust-key-kind name="kind" {
                    option value="cosign" { "cosign public key" }
                    option value="notation" { "notation certificate" }
                }
                label for="trust-key-pem" { "Public key or certificate (PEM)" }
                textarea #trust-key-pem name="pem" rows="8" required spellcheck="false" placeholder="-----BEGIN PUBLIC KEY-----" {}
                div.form-row { button.primary type="submit" { "Add key" } }
            }
        }
    }
}

/// The policy form of a scope, and for a repository what its organization requires.
pub fn policy_panel(
    viewer: &Viewer,
    scope: &TrustScope,
    action: &str,
    own: Requirement,
    inherited: Option<&Inherited<'_>>,
) -> Markup {
    let required = own == Requirement::Verified;
    let by_org = inherited.is_some_and(|i| i.require == Requirement::Verified);
    html! {
        section.panel.trust-policy #trust-policy {
            h2 { "Trust policy" }
            @if let Some(i) = inherited.filter(|i| i.require == Requirement::Verified) {
                p.policy-inherited {
                    strong { "Verified signatures are required by the organization" }
                    " " code { (i.namespace) } ": this repository serves only verified images, whatever it sets below."
                }
            }
            p.hint {
                "While verified signatures are required, pulls of images that are not verified are refused (403); "
                "signatures, attestations and SBOMs stay readable and pushes are never refused."
            }
            form.trust-policy-form method="post" action=(action) {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="trust-policy";
                fieldset {
                    legend { "Require verified signatures in this " (scope_words(scope)) }
                    label.radio { input type="radio" name="require" value="verified" checked[required]; " On: serve only verified images" }
                    br;
                    label.radio { input type="radio" name="require" value="none" checked[!required]; " Off" @if by_org { " (the organization's policy still holds)" } }
                }
                div.form-row { button.primary type="submit" { "Save policy" } }
            }
        }
    }
}

/// A usage-log event about `scope`, with the same metadata as the API's records.
fn record_scope(event: crate::usage_log::Event, scope: &TrustScope) -> crate::usage_log::Event {
    match scope {
        TrustScope::Namespace(ns) => event.namespace(ns).detail("scope", ns.as_str()),
        TrustScope::Repository(repo) => event.repository(repo).detail("scope", repo.as_str()),
    }
}

/// Carries out one of the panels' forms (`add-trust-key`, `delete-trust-key`, `trust-policy`)
/// for `scope` (the caller checked the CSRF token and admin rights); the flash message to show.
pub async fn act(
    store: &dyn TrustStore,
    usage: &UsageLog,
    viewer: &Viewer,
    scope: &TrustScope,
    action: &str,
    form: &FormData,
) -> Result<Flash, PageError> {
    Ok(match action {
        "add-trust-key" => {
            let name = form.required("name")?;
            let kind = KeyKind::parse(form.required("kind")?)
                .ok_or_else(|| PageError::BadRequest("kind is cosign or notation".into()))?;
            let pem = form.required("pem")?;
            if pem.len() > MAX_PEM {
                return Ok(Flash::error(format!(
                    "The PEM is too long (at most {} KiB).",
                    MAX_PEM / 1024
                )));
            }
            let key = match crate::trust::new_key(scope.clone(), name, kind, pem) {
                Ok(key) => key,
                Err(why) => return Ok(Flash::error(format!("Cannot add the key: {why}"))),
            };
            match store.add_trust_key(&key).await {
                Ok(()) => {}
                Err(MetadataError::Conflict) => {
                    return Ok(Flash::error(format!(
                        "There already is a key named {} here.",
                        key.name
                    )))
                }
                Err(e) => return Err(e.into()),
            }
            usage.record(record_scope(
                viewer
                    .event("add_trust_key")
                    .detail("name", key.name.as_str())
                    .detail("kind", key.kind.as_str())
                    .detail("fingerprint", key.fingerprint.as_str()),
                scope,
            ));
            Flash::success(format!("Added the trusted key {}.", key.name))
        }
        "delete-trust-key" => {
            let id = form.required("id")?;
            let keys = store.trust_keys(scope).await?;
            let Some(key) = keys.iter().find(|k| k.id == id) else {
                return Ok(Flash::error("There is no such key."));
            };
            if !store.delete_trust_key(scope, id).await? {
                return Ok(Flash::error("There is no such key."));
            }
            usage.record(record_scope(
                viewer
                    .event("delete_trust_key")
                    .detail("name", key.name.as_str())
                    .detail("kind", key.kind.as_str())
                    .detail("fingerprint", key.fingerprint.as_str()),
                scope,
            ));
            Flash::success(format!("Deleted the trusted key {}.", key.name))
        }
        "trust-policy" => {
            let (require, word) = match form.required("require")? {
                "verified" => (Requirement::Verified, "verified"),
                "none" => (Requirement::None, "none"),
                _ => return Err(PageError::BadRequest("require is verified or none".into())),
            };
            store.set_trust_policy(scope, require).await?;
            usage.record(record_scope(
                viewer.event("change_trust_policy").detail("require", word),
                scope,
            ));
            Flash::success(match require {
                Requirement::Verified => format!(
                    "This {} now requires verified signatures.",
                    scope_words(scope)
                ),
                Requirement::None => format!(
                    "This {} no longer requires verified signatures.",
                    scope_words(scope)
                ),
            })
        }
        other => return Err(PageError::BadRequest(format!("unknown action {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{verdict, SignatureFormat};

    fn stored(checks: Vec<SignatureCheck>, current: bool) -> StoredVerdict {
        StoredVerdict {
            digest: "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .parse()
                .unwrap(),
            verdict: verdict(checks),
            current,
            computed_at: 0,
        }
    }

    fn check(result: CheckResult, signer: Option<&str>) -> SignatureCheck {
        SignatureCheck {
            signature: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
                .parse()
                .unwrap(),
            format: SignatureFormat::CosignTag,
            signer: signer.map(str::to_string),
            result,
        }
    }

    #[test]
    fn badges_say_the_status_in_words() {
        let v = stored(
            vec![
                check(
                    CheckResult::Verified {
                        key: "release".into(),
                    },
                    None,
                ),
                check(CheckResult::Verified { key: "ci".into() }, None),
            ],
            true,
        );
        let html = badge("/repository/a/b/manifest/x", &v)
            .unwrap()
            .into_string();
        assert!(html.contains("verified by ci, release"), "{html}");
        assert!(html.contains("data-status=\"verified\""));
        let v = stored(vec![check(CheckResult::Untrusted, None)], true);
        assert!(badge("/m", &v)
            .unwrap()
            .into_string()
            .contains("signed, untrusted key"));
        let v = stored(
            vec![check(
                CheckResult::Invalid {
                    reason: "signs another digest".into(),
                },
                None,
            )],
            false,
        );
        let html = badge("/m", &v).unwrap().into_string();
        assert!(html.contains("invalid signature") && html.contains("being verified again"));
        assert!(
            badge("/m", &stored(vec![], true)).is_none(),
            "unsigned shows nothing"
        );
    }

    #[test]
    fn the_section_escapes_what_signatures_say() {
        let v = stored(
            vec![check(
                CheckResult::Invalid {
                    reason: "<script>alert(1)</script>".into(),
                },
                Some("CN=<b>evil</b>"),
            )],
            true,
        );
        let html = signatures_section("/repository/a/b", Some(&v), true).into_string();
        assert!(!html.contains("<script>") && !html.contains("<b>evil"));
        assert!(html.contains("&lt;script&gt;") && html.contains("CN=&lt;b&gt;evil"));
        assert!(html.contains("invalid signature") && !html.contains("being verified"));
        let pending = signatures_section("/r", None, true).into_string();
        assert!(pending.contains("being verified"));
        let unsigned = signatures_section("/r", None, false).into_string();
        assert!(unsigned.contains("Not signed"));
        let stale = signatures_section(
            "/r",
            Some(&stored(vec![check(CheckResult::Untrusted, None)], false)),
            true,
        )
        .into_string();
        assert!(stale.contains("signed, untrusted key") && stale.contains("being verified"));
    }
}
