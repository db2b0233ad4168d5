//! Test blob storage: with `BERTH_TEST_S3_ENDPOINT` (and the bucket, key and region variables
//! `scripts/garage.sh` writes) set, every data directory a test uses gets its own key prefix
//! in that bucket, so the whole suite runs against S3 and no test sees another's blobs;
//! without it, blobs live in the data directory as usual.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth::config::{S3Credentials, S3Settings, StorageSettings};

/// The environment variable that points the suite at an S3 service.
pub const TEST_S3_ENDPOINT_ENV: &str = "BERTH_TEST_S3_ENDPOINT";

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.trim().is_empty())
}

/// The S3 bucket tests run against with keys under `prefix`, if the environment names one.
pub fn s3_under_test(prefix: &str) -> Option<S3Settings> {
    let endpoint = var(TEST_S3_ENDPOINT_ENV)?;
    let get = |name: &str| {
        var(name).unwrap_or_else(|| panic!("{TEST_S3_ENDPOINT_ENV} is set but {name} is not"))
    };
    Some(S3Settings {
        bucket: get("BERTH_TEST_S3_BUCKET"),
        prefix: prefix.to_string(),
        endpoint: Some(endpoint),
        region: var("BERTH_TEST_S3_REGION").unwrap_or_else(|| "garage".to_string()),
        credentials: Some(S3Credentials {
            access_key: get("BERTH_TEST_S3_ACCESS_KEY"),
            secret_key: get("BERTH_TEST_S3_SECRET_KEY"),
        }),
    })
}

/// Whether the suite runs on S3.
pub fn on_s3() -> bool {
    var(TEST_S3_ENDPOINT_ENV).is_some()
}

/// Prints (once per call site) why a filesystem-only assertion is skipped on S3.
pub fn skip_on_s3(what: &str) -> bool {
    if on_s3() {
        println!("skipped on S3 ({TEST_S3_ENDPOINT_ENV} set): {what}");
        return true;
    }
    false
}

/// Data directory -> key prefix, so a restart or a respawned process on the same directory
/// finds the same blobs.
static PREFIXES: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);

/// The storage of `data_dir` under S3 (a prefix made on first use), or None on the filesystem.
pub fn test_storage_for(data_dir: &Path) -> Option<StorageSettings> {
    if !on_s3() {
        return None;
    }
    let prefix = PREFIXES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(data_dir.to_path_buf())
        .or_insert_with(|| format!("berth-test/{}", uuid::Uuid::new_v4().simple()))
        .clone();
    s3_under_test(&prefix).map(StorageSettings::S3)
}

/// The storage keys of `storage` as config file text, for a berth started as a process
/// (streaming blobs itself, like the in-process test servers).
pub fn storage_config_yaml(storage: &StorageSettings) -> String {
    let StorageSettings::S3(s3) = storage else {
        return String::new();
    };
    let credentials = s3.credentials.as_ref().expect("test credentials");
    let value = |s: &str| serde_json::to_string(s).expect("json string");
    format!(
        "DISTRIBUTED_STORAGE_CONFIG:\n  default:\n  - S3Storage\n  - endpoint_url: {}\n    s3_bucket: {}\n    s3_access_key: {}\n    s3_secret_key: {}\n    s3_region: {}\n    storage_path: {}\nDISTRIBUTED_STORAGE_PREFERENCE: [default]\nFEATURE_PROXY_STORAGE: true\n",
        value(s3.endpoint.as_deref().expect("test endpoint")),
        value(&s3.bucket),
        value(&credentials.access_key),
        value(&credentials.secret_key),
        value(&s3.region),
        value(&format!("/{}", s3.prefix)),
    )
}

/// A config file holding the storage keys of `data_dir` under S3, for a berth process (server
/// or CLI) on that directory; None on the filesystem. The files live in
/// `$TMPDIR/berth-test-configs` (owner-only: they hold the test key).
pub fn test_config_file_for(data_dir: &Path) -> Option<PathBuf> {
    let storage = test_storage_for(data_dir)?;
    let StorageSettings::S3(s3) = &storage else {
        return None;
    };
    let dir = std::env::temp_dir().join("berth-test-configs");
    std::fs::create_dir_all(&dir).expect("config dir");
    let path = dir.join(format!("{}.yaml", s3.prefix.replace('/', "-")));
    if !path.exists() {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(&path)
            .and_then(|mut f| f.write_all(storage_config_yaml(&storage).as_bytes()))
            .expect("write test config");
    }
    Some(path)
}

/// A raw client of the test bucket (no berth in between).
fn raw_s3(s3: &S3Settings) -> object_store::aws::AmazonS3 {
    let credentials = s3.credentials.clone().expect("test credentials");
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(s3.endpoint.clone().expect("test endpoint"))
        .with_allow_http(true)
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_access_key_id(credentials.access_key)
        .with_secret_access_key(credentials.secret_key)
        .build()
        .expect("S3 client")
}

/// What the blob store of `data_dir` holds in `area` (`"uploads"` or `"blobs"`): the entries
/// of that directory on the filesystem, every object key under that prefix on S3.
pub async fn stored_in(data_dir: &Path, area: &str) -> Vec<String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let Some(StorageSettings::S3(s3)) = test_storage_for(data_dir) else {
        return std::fs::read_dir(data_dir.join(area))
            .expect("storage area")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
    };
    let prefix = object_store::path::Path::from(format!("{}/{area}", s3.prefix));
    raw_s3(&s3)
        .list(Some(&prefix))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("list the test bucket")
}

/// The bytes of `data_dir`'s blob store, reached behind berth's back: files under the data
/// directory, or objects under the test prefix through the S3 API. Names are relative to the
/// store's root, `/`-separated (`blobs/sha256/ab/<hex>`).
pub struct RawStorage {
    dir: PathBuf,
    s3: Option<(object_store::aws::AmazonS3, String)>,
}

impl RawStorage {
    /// The raw bytes of the store the test server on `data_dir` uses.
    pub fn of(data_dir: &Path) -> RawStorage {
        let s3 = match test_storage_for(data_dir) {
            Some(StorageSettings::S3(s3)) => Some((raw_s3(&s3), s3.prefix.clone())),
            _ => None,
        };
        RawStorage {
            dir: data_dir.to_path_buf(),
            s3,
        }
    }

    fn key(prefix: &str, name: &str) -> object_store::path::Path {
        object_store::path::Path::from(format!("{prefix}/{name}"))
    }

    /// Writes (or overwrites) `name`.
    pub async fn write(&self, name: &str, bytes: &[u8]) {
        use object_store::ObjectStoreExt;
        match &self.s3 {
            Some((store, prefix)) => {
                store
                    .put(&Self::key(prefix, name), bytes.to_vec().into())
                    .await
                    .expect("put object");
            }
            None => {
                let path = self.dir.join(name);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, bytes).expect("write file");
            }
        }
    }

    /// The bytes of `name`, if it exists.
    pub async fn read(&self, name: &str) -> Option<Vec<u8>> {
        use object_store::ObjectStoreExt;
        match &self.s3 {
            Some((store, prefix)) => match store.get(&Self::key(prefix, name)).await {
                Ok(got) => Some(got.bytes().await.expect("read object").to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("get {name}: {e}"),
            },
            None => std::fs::read(self.dir.join(name)).ok(),
        }
    }

    /// Deletes `name`.
    pub async fn delete(&self, name: &str) {
        use object_store::ObjectStoreExt;
        match &self.s3 {
            Some((store, prefix)) => store
                .delete(&Self::key(prefix, name))
                .await
                .expect("delete object"),
            None => std::fs::remove_file(self.dir.join(name)).expect("remove file"),
        }
    }

    /// Every name under `area` (a folder such as `quarantine` or `uploads/<id>`), sorted.
    pub async fn list(&self, area: &str) -> Vec<String> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let mut names: Vec<String> = match &self.s3 {
            Some((store, prefix)) => store
                .list(Some(&Self::key(prefix, area)))
                .map_ok(|meta| {
                    let key = meta.location.to_string();
                    key.strip_prefix(&format!("{prefix}/"))
                        .expect("key under the prefix")
                        .to_string()
                })
                .try_collect()
                .await
                .expect("list objects"),
            None => {
                fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
                    let Ok(entries) = std::fs::read_dir(dir) else {
                        return;
                    };
                    for entry in entries {
                        let path = entry.expect("entry").path();
                        if path.is_dir() {
                            walk(root, &path, out);
                        } else {
                            let rel = path.strip_prefix(root).expect("under the root");
                            out.push(rel.to_string_lossy().replace('\\', "/"));
                        }
                    }
                }
                let mut out = Vec::new();
                walk(&self.dir, &self.dir.join(area), &mut out);
                out
            }
        };
        names.sort();
        names
    }
}

/// The name of a blob's bytes in a store (`blobs/<algorithm>/<two hex>/<hex>`).
pub fn blob_name(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
    format!("blobs/{algorithm}/{}/{hex}", &hex[..2])
}
