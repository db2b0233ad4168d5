//! The manifest phase: every manifest's bytes, and what it references.

use oci::{Digest, ParsedManifest, RepoName};

use super::{BadBlobs, Checker, ChildState, FsckError, Problem, Reference, Run, PAGE};
use crate::metadata::fsck::{ManifestRecord, RecordedReferences};

impl Checker {
    /// Checks every manifest, page by page.
    pub(super) async fn check_manifests(
        &self,
        run: &mut Run<'_>,
        bad: &BadBlobs,
        repair: bool,
    ) -> Result<(), FsckError> {
        run.progress("checking manifests");
        let mut after: Option<(RepoName, Digest)> = None;
        loop {
            let page = self
                .meta
                .manifests_after(after.as_ref().map(|(r, d)| (r, d)), PAGE)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some((last.repository.clone(), last.digest.clone()));
            for record in page {
                self.keep_lease(run, repair).await?;
                for problem in self.check_manifest(&record, bad).await? {
                    run.problem(problem);
                }
                run.report.manifests += 1;
                if run.progress_due() {
                    let line = format!("manifests: {} checked", run.report.manifests);
                    run.progress(&line);
                }
            }
        }
        Ok(())
    }

    async fn check_manifest(
        &self,
        record: &ManifestRecord,
        bad: &BadBlobs,
    ) -> Result<Vec<Problem>, FsckError> {
        let repo = &record.repository;
        let corrupt = |reason: String| {
            vec![Problem::CorruptManifest {
                repository: repo.clone(),
                digest: record.digest.clone(),
                reason,
            }]
        };
        let Some(content) = &record.content else {
            return Ok(corrupt("content missing".into()));
        };
        let actual = record.digest.algorithm().digest_of(content);
        if actual != record.digest {
            return Ok(corrupt(format!("content hashes to {actual}")));
        }
        let parsed = match oci::manifest::parse(content, &record.media_type) {
            Ok(p) => p,
            Err(e) => return Ok(corrupt(format!("unparseable: {e}"))),
        };
        let mut problems = Vec::new();
        let broken = |reference, child: &Digest, state| Problem::BrokenManifest {
            repository: repo.clone(),
            digest: record.digest.clone(),
            reference,
            child: child.clone(),
            state,
        };
        let wanted = blob_references(&parsed);
        if !wanted.is_empty() {
            let digests: Vec<Digest> = wanted.iter().map(|(_, d)| d.clone()).collect();
            let linked = self.meta.linked_blobs(repo, &digests).await?;
            for (reference, digest) in &wanted {
                let state = if linked.contains_key(digest) {
                    bad.get(digest).map(|b| b.state)
                } else if record.sparse && *reference == Reference::Layer {
                    // Accepted as absent when the manifest was pushed; a config never is.
                    None
                } else if self.meta.blob_size(digest).await?.is_some() {
                    Some(ChildState::NotLinked)
                } else {
                    Some(ChildState::Missing)
                };
                if let Some(state) = state {
                    problems.push(broken(*reference, digest, state));
                }
            }
        }
        let children: Vec<Digest> = parsed.manifests.iter().map(|d| d.digest.clone()).collect();
        // A sparse index's absent children were accepted as absent.
        if !children.is_empty() && !record.sparse {
            let present = self.meta.present_manifests(repo, &children).await?;
            for child in children.iter().filter(|c| !present.contains(*c)) {
                problems.push(broken(Reference::ChildManifest, child, ChildState::Missing));
            }
        }
        let mut expected = RecordedReferences {
            blobs: wanted.into_iter().map(|(_, d)| d).collect(),
            children,
        };
        for list in [&mut expected.blobs, &mut expected.children] {
            list.sort();
            list.dedup();
        }
        let recorded = self.meta.recorded_references(repo, &record.digest).await?;
        if recorded != expected {
            problems.push(Problem::InconsistentManifest {
                repository: repo.clone(),
                digest: record.digest.clone(),
            });
        }
        Ok(problems)
    }
}

/// The blobs a manifest needs in its repository (as a push checks them), each with its role.
fn blob_references(parsed: &ParsedManifest) -> Vec<(Reference, Digest)> {
    let config = parsed.config.as_ref();
    parsed
        .blob_references()
        .map(|d| {
            let role = if config.is_some_and(|c| std::ptr::eq(c, d)) {
                Reference::Config
            } else {
                Reference::Layer
            };
            (role, d.digest.clone())
        })
        .collect()
}
