//! What an integrity check finds and does, each printed as one stable line.

use std::fmt;

use oci::{Digest, RepoName};

/// Something wrong with the stores. Each makes `berth fsck` exit 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A blob's stored bytes do not hash to its digest (or have another size).
    CorruptBlob {
        digest: Digest,
        expected_size: u64,
        actual_digest: Digest,
        actual_size: u64,
    },
    /// Metadata knows a blob whose bytes are not in storage.
    MissingBlob { digest: Digest, size: u64 },
    /// A blob's bytes hash to its digest but metadata records another size.
    WrongSizeBlob {
        digest: Digest,
        recorded: u64,
        stored: u64,
    },
    /// A manifest's stored bytes are missing, do not hash to its digest, or do not parse.
    CorruptManifest {
        repository: RepoName,
        digest: Digest,
        reason: String,
    },
    /// A manifest references a blob or child manifest that is not whole in its repository.
    BrokenManifest {
        repository: RepoName,
        digest: Digest,
        reference: Reference,
        child: Digest,
        state: ChildState,
    },
    /// A manifest's recorded references (what keeps its blobs alive) differ from its content.
    InconsistentManifest {
        repository: RepoName,
        digest: Digest,
    },
    /// A tag points at a manifest its repository does not store.
    DanglingTag {
        repository: RepoName,
        tag: String,
        digest: Digest,
    },
    /// An upload session whose data is not in storage (it cannot be resumed).
    BrokenUpload {
        repository: RepoName,
        id: String,
        length: u64,
    },
}

/// What a manifest reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Config,
    Layer,
    ChildManifest,
}

/// How a referenced blob or child manifest is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// Not in metadata, or its bytes are not in storage.
    Missing,
    /// Its bytes do not match its digest.
    Corrupt,
    /// Known, but not readable in the manifest's repository.
    NotLinked,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::CorruptBlob {
                digest,
                expected_size,
                actual_digest,
                actual_size,
            } => write!(
                f,
                "corrupt blob {digest} expected size {expected_size}, got digest {actual_digest} size {actual_size}"
            ),
            Problem::MissingBlob { digest, size } => write!(f, "missing blob {digest} size {size}"),
            Problem::WrongSizeBlob {
                digest,
                recorded,
                stored,
            } => write!(
                f,
                "wrong-size blob {digest} recorded size {recorded}, stored size {stored}"
            ),
            Problem::CorruptManifest {
                repository,
                digest,
                reason,
            } => write!(f, "corrupt manifest {repository}@{digest}: {reason}"),
            Problem::BrokenManifest {
                repository,
                digest,
                reference,
                child,
                state,
            } => {
                let reference = match reference {
                    Reference::Config => "config",
                    Reference::Layer => "layer",
                    Reference::ChildManifest => "child manifest",
                };
                let state = match state {
                    ChildState::Missing => "missing",
                    ChildState::Corrupt => "corrupt",
                    ChildState::NotLinked => "not linked",
                };
                write!(
                    f,
                    "broken manifest {repository}@{digest}: {reference} {child} {state}"
                )
            }
            Problem::InconsistentManifest { repository, digest } => write!(
                f,
                "inconsistent manifest {repository}@{digest}: recorded references differ from its content"
            ),
            Problem::DanglingTag {
                repository,
                tag,
                digest,
            } => write!(f, "dangling tag {repository}:{tag} -> {digest}"),
            Problem::BrokenUpload {
                repository,
                id,
                length,
            } => write!(
                f,
                "broken upload {repository} {id}: data missing (recorded {length} bytes)"
            ),
        }
    }
}

/// Something worth knowing that is not an error (the exit status stays 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// Bytes in storage, older than the check, that metadata does not know: left by a crash
    /// or a push that failed after writing them. Garbage collection deletes them once
    /// `GC_GRACE_SECONDS` have passed.
    OrphanBlob { digest: Digest, size: u64 },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::OrphanBlob { digest, size } => {
                write!(f, "warning: orphan blob {digest} size {size}")
            }
        }
    }
}

/// What `--repair` did about one bad blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// The bytes moved to `location` in the quarantine area, and metadata forgot the blob.
    Quarantined {
        digest: Digest,
        location: String,
        repositories: Vec<RepoName>,
    },
    /// The bytes were already gone, and metadata forgot the blob.
    Forgotten {
        digest: Digest,
        repositories: Vec<RepoName>,
    },
    /// Nothing done, because the blob changed since it was checked.
    Kept {
        digest: Digest,
        reason: &'static str,
    },
}

fn linked_in(f: &mut fmt::Formatter<'_>, repositories: &[RepoName]) -> fmt::Result {
    if repositories.is_empty() {
        return f.write_str(" (linked in no repository)");
    }
    f.write_str(" (linked in")?;
    for r in repositories {
        write!(f, " {r}")?;
    }
    f.write_str(")")
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::Quarantined {
                digest,
                location,
                repositories,
            } => {
                write!(f, "quarantined blob {digest} to {location}")?;
                linked_in(f, repositories)
            }
            Repair::Forgotten {
                digest,
                repositories,
            } => {
                write!(f, "forgot missing blob {digest}")?;
                linked_in(f, repositories)
            }
            Repair::Kept { digest, reason } => write!(f, "kept blob {digest}: {reason}"),
        }
    }
}

/// What a check reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Note<'a> {
    /// A phase began, or how far the current one got.
    Progress(&'a str),
    Problem(&'a Problem),
    Warning(&'a Warning),
    Repair(&'a Repair),
}

/// What a check found and did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Whether nothing was checked because `--repair` could not take the lease.
    pub busy: bool,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Warning>,
    pub repairs: Vec<Repair>,
    /// Whether repairs were asked for.
    pub repair: bool,
    pub blobs: u64,
    pub bytes: u64,
    pub manifests: u64,
    pub tags: u64,
    pub uploads: u64,
}

impl Report {
    /// A one-line summary.
    pub fn summary(&self) -> String {
        if self.busy {
            return "another process holds the gc lease (a collection or a repair); nothing checked"
                .into();
        }
        let mut line = format!(
            "checked {} blobs ({} bytes), {} manifests, {} tags, {} uploads: {} problems, {} warnings",
            self.blobs,
            self.bytes,
            self.manifests,
            self.tags,
            self.uploads,
            self.problems.len(),
            self.warnings.len()
        );
        if self.repair {
            let count = |f: fn(&Repair) -> bool| self.repairs.iter().filter(|r| f(r)).count();
            line.push_str(&format!(
                "; repair quarantined {} blobs, forgot {} missing blobs, kept {}",
                count(|r| matches!(r, Repair::Quarantined { .. })),
                count(|r| matches!(r, Repair::Forgotten { .. })),
                count(|r| matches!(r, Repair::Kept { .. })),
            ));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_stable() {
        let d = |c: &str| -> Digest { format!("sha256:{}", c.repeat(64)).parse().unwrap() };
        let repo: RepoName = "org/app".parse().unwrap();
        let lines = [
            Problem::CorruptBlob {
                digest: d("a"),
                expected_size: 10,
                actual_digest: d("b"),
                actual_size: 11,
            }
            .to_string(),
            Problem::BrokenManifest {
                repository: repo.clone(),
                digest: d("c"),
                reference: Reference::Layer,
                child: d("a"),
                state: ChildState::Missing,
            }
            .to_string(),
            Repair::Quarantined {
                digest: d("a"),
                location: "/q/x".into(),
                repositories: vec![repo],
            }
            .to_string(),
        ];
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        assert_eq!(
            lines,
            [
                format!("corrupt blob sha256:{a} expected size 10, got digest sha256:{b} size 11"),
                format!("broken manifest org/app@sha256:{c}: layer sha256:{a} missing"),
                format!("quarantined blob sha256:{a} to /q/x (linked in org/app)"),
            ]
        );
    }
}
