//! The data directory holds the token signing key, password hashes and private blobs: berth
//! keeps it and everything it writes there private to its own account, whatever the umask it is
//! started with and whatever mode an existing directory (or an older berth's files) had.
//!
//! This binary holds one test, since it sets the process umask, which the spawned berth
//! inherits.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;

/// A file of the operator's in the data directory, which berth leaves as it is.
const NOT_BERTHS: &str = "operator-notes.txt";

/// Every entry under `dir` (and `dir` itself) that the group or others may use, with its mode;
/// [`NOT_BERTHS`] aside.
fn open_to_others(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.ends_with(NOT_BERTHS) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            found.push((path.clone(), mode));
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                pending.push(entry.expect("entry").path());
            }
        }
    }
    found
}

/// Gives everything under `dir` the modes a umask of 022 gives: what an older berth left.
fn open_up(dir: &Path) {
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).expect("stat");
        let mode = if meta.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).expect("read dir") {
                pending.push(entry.expect("entry").path());
            }
        }
    }
}

/// Pushes an image and leaves an upload session open, so the blob store has files and
/// directories of both kinds.
async fn write_some(p: &ProcessServer, tag: &str) {
    push_image(&p.client, &p.base, "admin/app", tag, tag.as_bytes()).await;
    start_upload(&p.client, &p.base, "admin/app").await;
}

#[tokio::test]
async fn everything_under_the_data_directory_is_private_whatever_the_umask() {
    // SAFETY: umask only replaces the process's file mode creation mask; this binary runs this
    // one test, and the berth it spawns inherits the mask, as it would from a shell.
    unsafe { libc::umask(0o022) };
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let notes = data.join(NOT_BERTHS);
    std::fs::write(&notes, "not berth's").expect("write notes");

    // An existing 0755 directory, started with umask 022.
    let p = ProcessServer::spawn(&data).await;
    write_some(&p, "v1").await;
    assert_eq!(
        open_to_others(&data),
        [],
        "after the first start and a push"
    );
    let restricted = "was open to other accounts (mode 755)";
    assert!(p.log.count(restricted) == 1, "a warning names the old mode");
    p.kill9().await;

    // What an older berth left: the directory 0755 and every file 0644, the database too.
    open_up(&data);
    assert!(!open_to_others(&data).is_empty());
    let p = ProcessServer::spawn(&data).await;
    write_some(&p, "v2").await;
    assert_eq!(open_to_others(&data), [], "after a restart on open files");
    assert!(p.log.count(restricted) == 1);
    p.kill9().await;

    // A later start on a private directory has nothing to say.
    let p = ProcessServer::spawn(&data).await;
    write_some(&p, "v3").await;
    assert_eq!(open_to_others(&data), []);
    assert_eq!(p.log.count("open to other accounts"), 0);
    // Only what berth keeps there was changed; the directory's mode covers the rest.
    let mode = std::fs::metadata(&notes)
        .expect("notes")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
}
