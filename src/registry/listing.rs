//! Tag lists, the catalog and the referrers API.

use oci::{Digest, RepoName, Tag};

use super::{Registry, RegistryError};
use crate::metadata::{Referrer, TagHistoryEntry};

/// One page of a listing, and whether more follow.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The last item's key when another page follows.
    pub next_after: Option<String>,
}

/// One page of referrers.
pub type ReferrersPage = Page<Referrer>;

impl Registry {
    fn page_size(&self, n: Option<u32>) -> u32 {
        let max = self.options().max_page_size;
        n.unwrap_or(max).min(max)
    }

    /// Tags of `repo` after `last`, at most `n` (capped by the configured page size).
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        n: Option<u32>,
        last: Option<&str>,
    ) -> Result<Page<Tag>, RegistryError> {
        if !self.meta.repository_exists(repo).await? {
            return Err(RegistryError::NameUnknown(repo.clone()));
        }
        let limit = self.page_size(n);
        if limit == 0 {
            return Ok(Page {
                items: Vec::new(),
                next_after: None,
            });
        }
        let mut items = self.meta.list_tags(repo, last, limit + 1).await?;
        let next_after = paginate(&mut items, limit, |t| t.as_str().to_string());
        Ok(Page { items, next_after })
    }

    /// Tags of `repo` with their manifests' facts (for the management API and dashboard).
    pub async fn tag_details(
        &self,
        repo: &RepoName,
        query: &crate::metadata::TagQuery<'_>,
    ) -> Result<Vec<crate::metadata::TagDetail>, RegistryError> {
        Ok(self.meta.tag_details(repo, query).await?)
    }

    /// Manifests of `repo` that sign, attest or describe any of `targets`.
    pub async fn describers(
        &self,
        repo: &RepoName,
        targets: &[Digest],
    ) -> Result<Vec<crate::metadata::Describer>, RegistryError> {
        Ok(self.meta.describers(repo, targets).await?)
    }

    /// One page of the manifests of `repo` that describe `target`, and how many there are.
    pub async fn describers_page(
        &self,
        repo: &RepoName,
        target: &Digest,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<crate::metadata::Describer>, u64), RegistryError> {
        Ok(self
            .meta
            .describers_page(repo, target, offset, limit)
            .await?)
    }

    /// What was recorded about one manifest of `repo`.
    pub async fn manifest_summary(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<crate::metadata::ManifestSummary>, RegistryError> {
        Ok(self.meta.manifest_summary(repo, digest).await?)
    }

    /// Points a tag at a manifest already in the repository; false when it is not there.
    pub async fn move_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        Ok(self.meta.move_tag(repo, tag, digest).await?)
    }

    /// The start of the window in which tag history is kept (milliseconds since the epoch).
    fn history_since(&self) -> i64 {
        let window = self.options().tag_expiration;
        std::time::SystemTime::now()
            .checked_sub(window)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_millis() as i64)
    }

    /// Where tags of `repo` pointed before (only `tag`, when given), newest first, within
    /// `DEFAULT_TAG_EXPIRATION`.
    pub async fn tag_history(
        &self,
        repo: &RepoName,
        tag: Option<&Tag>,
        limit: u32,
    ) -> Result<Vec<TagHistoryEntry>, RegistryError> {
        let since = self.history_since();
        Ok(self.meta.tag_history(repo, tag, since, limit).await?)
    }

    /// Points `tag` back at `digest` when, within `DEFAULT_TAG_EXPIRATION`, it pointed there
    /// and the manifest is still stored. Returns whether it did.
    pub async fn restore_tag(
        &self,
        repo: &RepoName,
        tag: &Tag,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let since = self.history_since();
        Ok(self.meta.restore_tag(repo, tag, digest, since).await?)
    }

    /// Manifests in `repo` whose subject is `subject`, optionally of one artifact type.
    pub async fn referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
        artifact_type: Option<&str>,
        n: Option<u32>,
        last: Option<&Digest>,
    ) -> Result<ReferrersPage, RegistryError> {
        let limit = self.page_size(n).max(1);
        let mut items = self
            .meta
            .referrers(repo, subject, artifact_type, last, limit + 1)
            .await?;
        let next_after = paginate(&mut items, limit, |r| r.digest.to_string());
        Ok(Page { items, next_after })
    }
}

/// Cuts `items` (fetched with one extra) to `limit` and returns the key to continue after.
fn paginate<T>(items: &mut Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Option<String> {
    if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(key)
    } else {
        None
    }
}
