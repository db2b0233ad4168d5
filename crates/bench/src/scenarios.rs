//! The scenarios (after zot's zb), the content each registry is given before they run, and how
//! each is measured.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;

use crate::client::{Conn, Target};
use crate::content::{prepare, Blob, Image, Prepared};
use crate::measure::{measure, Amount, Sample};
use crate::op;
use crate::ops;

pub const MIB: u64 = 1024 * 1024;

/// Sizes and durations: the full run, or `--quick` (about a minute, to check the harness works).
#[derive(Clone, Copy)]
pub struct Scale {
    pub quick: bool,
}

impl Scale {
    fn window(&self, full_seconds: f64) -> Amount {
        Amount::For(Duration::from_secs_f64(if self.quick {
            0.3
        } else {
            full_seconds
        }))
    }

    fn count(&self, full: u64, quick: u64) -> Amount {
        Amount::Count(if self.quick { quick } else { full })
    }

    /// The "1 GiB" blob; 64 MiB in a quick run.
    pub fn large(&self) -> u64 {
        if self.quick {
            64 * MIB
        } else {
            1024 * MIB
        }
    }

    pub fn tags(&self) -> usize {
        if self.quick {
            300
        } else {
            10_000
        }
    }
}

/// What a scenario does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    PushBlob { size: u64, connections: usize },
    PushChunked { size: u64, chunk: u64 },
    PullBlob { size: u64, connections: usize },
    Manifest { head: bool, connections: usize },
    TagList { connections: usize },
    Catalog { connections: usize },
    SmallImages { connections: usize },
    Mix { connections: usize },
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub id: String,
    pub title: String,
    pub kind: Kind,
}

impl Scenario {
    /// Whether the headline figure is bytes per second (otherwise operations per second).
    pub fn is_throughput(&self) -> bool {
        matches!(
            self.kind,
            Kind::PushBlob { .. } | Kind::PushChunked { .. } | Kind::PullBlob { .. }
        )
    }

    /// What one operation is, for the report.
    pub fn unit(&self) -> &'static str {
        match self.kind {
            Kind::PushBlob { .. } | Kind::PushChunked { .. } => "blob pushes",
            Kind::PullBlob { .. } => "blob pulls",
            Kind::Manifest { .. } | Kind::TagList { .. } | Kind::Catalog { .. } => "requests",
            Kind::SmallImages { .. } => "images",
            Kind::Mix { .. } => "image pulls or pushes",
        }
    }

    pub fn connections(&self) -> usize {
        match self.kind {
            Kind::PushBlob { connections, .. }
            | Kind::PullBlob { connections, .. }
            | Kind::Manifest { connections, .. }
            | Kind::TagList { connections }
            | Kind::Catalog { connections }
            | Kind::SmallImages { connections }
            | Kind::Mix { connections } => connections,
            Kind::PushChunked { .. } => 1,
        }
    }
}

fn size_label(size: u64) -> String {
    if size >= 1024 * MIB {
        format!("{} GiB", size / (1024 * MIB))
    } else {
        format!("{} MiB", size / MIB)
    }
}

/// Every scenario, in the order they run.
pub fn all(scale: Scale) -> Vec<Scenario> {
    let mut list = Vec::new();
    let mut add = |id: String, title: String, kind: Kind| list.push(Scenario { id, title, kind });
    for (size, connections) in [(MIB, 4), (10 * MIB, 4), (100 * MIB, 1), (scale.large(), 1)] {
        add(
            format!("push-{}", size / MIB),
            format!(
                "blob push, monolithic, {} ({connections} conn.)",
                size_label(size)
            ),
            Kind::PushBlob { size, connections },
        );
    }
    add(
        "push-chunked-100".into(),
        "blob push, chunked, 100 MiB in 5 MiB chunks".into(),
        Kind::PushChunked {
            size: 100 * MIB,
            chunk: 5 * MIB,
        },
    );
    for (size, connections) in [(MIB, 8), (10 * MIB, 4), (100 * MIB, 1), (scale.large(), 1)] {
        add(
            format!("pull-{}", size / MIB),
            format!("blob pull, {} ({connections} conn.)", size_label(size)),
            Kind::PullBlob { size, connections },
        );
    }
    for head in [false, true] {
        for connections in [1, 8, 32, 128] {
            let verb = if head { "HEAD" } else { "GET" };
            add(
                format!("manifest-{}-{connections}", verb.to_lowercase()),
                format!("manifest {verb} by tag, {connections} conn."),
                Kind::Manifest { head, connections },
            );
        }
    }
    add(
        "tag-list-32".into(),
        format!("tag list of {} tags, 32 conn.", scale.tags()),
        Kind::TagList { connections: 32 },
    );
    add(
        "catalog-32".into(),
        "catalog (n=1000), 32 conn.".into(),
        Kind::Catalog { connections: 32 },
    );
    add(
        "small-images-32".into(),
        format!(
            "{} small images (config + 3 layers + manifest), 32 clients",
            if scale.quick { 100 } else { 1000 }
        ),
        Kind::SmallImages { connections: 32 },
    );
    add(
        "mix-32".into(),
        "75% image pulls / 25% image pushes, 32 clients".into(),
        Kind::Mix { connections: 32 },
    );
    list
}

/// The bench's ceiling: a bare HTTP endpoint answering a manifest-sized body.
pub fn hello_scenarios() -> Vec<Scenario> {
    [1, 8, 32, 128]
        .into_iter()
        .map(|connections| Scenario {
            id: format!("hello-{connections}"),
            title: format!("bare axum endpoint, {connections} conn."),
            kind: Kind::Manifest {
                head: false,
                connections,
            },
        })
        .collect()
}

/// About how many bytes a run stores on `servers` registries (nothing is deleted during a run:
/// distribution never frees bytes without its offline garbage collection).
pub fn disk_needed(scale: Scale, repeats: usize, servers: u64) -> u64 {
    let fixture = MIB + 10 * MIB + 100 * MIB + scale.large();
    let per_repeat: u64 = all(scale)
        .iter()
        .map(|s| match (s.kind, s.amount(scale)) {
            (Kind::PushBlob { size, .. } | Kind::PushChunked { size, .. }, Amount::Count(n)) => {
                size * n
            }
            (Kind::SmallImages { .. }, Amount::Count(n)) => n * (3 * SMALL_LAYER + 4096),
            (Kind::Mix { .. }, _) => 2_000 * (3 * SMALL_LAYER + 4096),
            _ => 0,
        })
        .sum();
    // Uploads in progress and metadata on top.
    (fixture + per_repeat * repeats as u64) * servers * 11 / 10 + (1 << 30)
}

/// Layer size of the small images.
const SMALL_LAYER: u64 = 32 * 1024;
const MANIFEST_REPO: &str = "bench/manifest";
const TAGS_REPO: &str = "bench/tags";
const PULL_REPO: &str = "bench/pull";
const MIX_REPO: &str = "bench/mix";
const MIX_IMAGES: u64 = 16;

/// What every registry holds before the scenarios run.
pub struct Fixture {
    image: Arc<Image>,
    pull: Vec<Prepared>,
    mix: Arc<Vec<Image>>,
    tag_list_len: u64,
}

/// Pushes the fixture through the registry's own API (`progress` hears each step).
pub async fn setup(
    target: &Arc<Target>,
    scale: Scale,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Fixture> {
    let mut conn = Conn::new(target.clone());
    let image = Arc::new(Image::new(u64::MAX >> 8, SMALL_LAYER));
    progress("the manifest image");
    ops::push_image(&mut conn, MANIFEST_REPO, "latest", &image).await?;
    progress("blobs to pull");
    let pull = prepare(
        [MIB, 10 * MIB, 100 * MIB, scale.large()]
            .into_iter()
            .enumerate()
            .map(|(i, size)| Blob::new((1 << 50) + i as u64, size))
            .collect(),
    )
    .await;
    for blob in &pull {
        ops::push_blob(&mut conn, PULL_REPO, blob).await?;
    }
    progress(&format!("{} tags", scale.tags()));
    ops::push_image(&mut conn, TAGS_REPO, "t0", &image).await?;
    let tags = scale.tags() as u64;
    let manifest = image.manifest.clone();
    let sample = measure(
        target,
        16,
        Amount::Count(tags - 1),
        &[],
        op!([manifest], |conn, i| ops::put_manifest(
            conn,
            TAGS_REPO,
            &format!("t{}", i + 1),
            &manifest
        )),
    )
    .await;
    if sample.errors > 0 {
        bail!("tagging failed: {}", sample.first_error.unwrap_or_default());
    }
    let (listed, tag_list_len) = ops::count_tags(&mut conn, TAGS_REPO).await?;
    if listed != scale.tags() {
        bail!("the registry lists {listed} tags, not {}", scale.tags());
    }
    progress("images to pull in the mix");
    let mix: Vec<Image> = (0..MIX_IMAGES)
        .map(|n| Image::new((1 << 45) + n, SMALL_LAYER))
        .collect();
    for (n, image) in mix.iter().enumerate() {
        ops::push_image(&mut conn, MIX_REPO, &format!("m{n}"), image)
            .await
            .context("push the mix's images")?;
    }
    Ok(Fixture {
        image,
        pull,
        mix: Arc::new(mix),
        tag_list_len,
    })
}

/// Of `connections` new connections (one per replica, taken in turn), how many get the
/// fixture's smallest blob through a redirect.
pub async fn redirected_pulls(
    target: &Arc<Target>,
    fixture: &Fixture,
    connections: usize,
) -> anyhow::Result<usize> {
    let blob = fixture
        .pull
        .iter()
        .min_by_key(|b| b.blob.size)
        .context("the fixture has blobs to pull")?;
    let mut redirected = 0;
    for _ in 0..connections {
        let mut conn = Conn::new(target.clone());
        if ops::pull_blob(&mut conn, PULL_REPO, blob).await?.requests > 1 {
            redirected += 1;
        }
    }
    Ok(redirected)
}

/// Content prepared for one repetition of a scenario, shared by every registry so each gets
/// the same bytes.
pub struct Work {
    blobs: Arc<Vec<Prepared>>,
    repeat: u64,
}

impl Scenario {
    /// Prepares repetition `repeat` (not timed: large digests take a while).
    pub async fn prepare(&self, scale: Scale, repeat: u64) -> Work {
        let count = |amount: Amount| match amount {
            Amount::Count(n) => n,
            Amount::For(_) => 0,
        };
        let seed = (repeat + 1) << 32;
        let blobs = match self.kind {
            Kind::PushBlob { size, .. } | Kind::PushChunked { size, .. } => {
                let n = count(self.amount(scale));
                prepare(
                    (0..n)
                        .map(|i| Blob::new(seed + ((size / MIB) << 20) + i, size))
                        .collect(),
                )
                .await
            }
            _ => Vec::new(),
        };
        Work {
            blobs: Arc::new(blobs),
            repeat,
        }
    }

    fn amount(&self, scale: Scale) -> Amount {
        match self.kind {
            Kind::PushBlob { size, .. } if size <= MIB => scale.count(100, 8),
            Kind::PushBlob { size, .. } if size <= 10 * MIB => scale.count(20, 4),
            Kind::PushBlob { size, .. } if size <= 100 * MIB => scale.count(3, 1),
            Kind::PushBlob { .. } => scale.count(1, 1),
            Kind::PushChunked { .. } => scale.count(2, 1),
            Kind::PullBlob { size, .. } if size <= 10 * MIB => scale.window(3.0),
            Kind::PullBlob { size, .. } if size <= 100 * MIB => scale.count(8, 2),
            Kind::PullBlob { .. } => scale.count(3, 1),
            Kind::Manifest { .. } | Kind::TagList { .. } | Kind::Catalog { .. } => {
                scale.window(3.0)
            }
            Kind::SmallImages { .. } => scale.count(1000, 100),
            Kind::Mix { .. } => scale.window(5.0),
        }
    }

    /// Measures this scenario once on `target`.
    pub async fn run(
        &self,
        scale: Scale,
        work: &Work,
        target: &Arc<Target>,
        fixture: &Fixture,
        pids: &[u32],
    ) -> Sample {
        let amount = self.amount(scale);
        let connections = self.connections();
        let repeat = work.repeat;
        let op = match self.kind {
            Kind::PushBlob { .. } => {
                let blobs = work.blobs.clone();
                op!([blobs], |conn, i| ops::push_blob(
                    conn,
                    "bench/push",
                    &blobs[i as usize]
                ))
            }
            Kind::PushChunked { chunk, .. } => {
                let blobs = work.blobs.clone();
                op!([blobs], |conn, i| ops::push_blob_chunked(
                    conn,
                    "bench/push",
                    &blobs[i as usize],
                    chunk
                ))
            }
            Kind::PullBlob { size, .. } => {
                let blob = fixture
                    .pull
                    .iter()
                    .find(|b| b.blob.size == size)
                    .expect("the fixture has every pull size")
                    .clone();
                op!([blob], |conn, _i| ops::pull_blob(conn, PULL_REPO, &blob))
            }
            Kind::Manifest { head, .. } => {
                let digest = fixture.image.manifest_digest.clone();
                op!([digest], |conn, _i| ops::get_manifest(
                    conn,
                    MANIFEST_REPO,
                    "latest",
                    head,
                    &digest
                ))
            }
            Kind::TagList { .. } => {
                let len = fixture.tag_list_len;
                op!([], |conn, _i| ops::list_tags(conn, TAGS_REPO, len))
            }
            Kind::Catalog { .. } => {
                op!([], |conn, _i| ops::catalog(conn, 1000))
            }
            Kind::SmallImages { .. } => {
                op!([], |conn, i| ops::push_image(
                    conn,
                    &format!("bench/small{}", i % 50),
                    &format!("r{repeat}-{i}"),
                    &Image::new((repeat + 1) * 10_000_000 + i, SMALL_LAYER)
                ))
            }
            Kind::Mix { .. } => {
                let mix = fixture.mix.clone();
                op!([mix], |conn, i| mix_step(conn, &mix, repeat, i))
            }
        };
        measure(target, connections, amount, pids, op).await
    }
}

/// One step of the mix: every fourth pushes a new image, the others pull one of the fixture's.
async fn mix_step(
    conn: &mut Conn,
    mix: &[Image],
    repeat: u64,
    i: u64,
) -> anyhow::Result<ops::Moved> {
    if i % 4 == 3 {
        let image = Image::new((repeat + 1) * 100_000_000 + i, SMALL_LAYER);
        ops::push_image(conn, MIX_REPO, &format!("p{repeat}-{i}"), &image).await
    } else {
        let n = i % MIX_IMAGES;
        ops::pull_image(conn, MIX_REPO, &format!("m{n}"), &mix[n as usize]).await
    }
}

/// The hello endpoint's answer: the same manifest berth serves, with a registry's headers.
pub fn hello_manifest() -> (Bytes, String) {
    let image = Image::new(u64::MAX >> 8, SMALL_LAYER);
    (image.manifest.clone(), image.manifest_digest.clone())
}

/// Measures the hello endpoint like a manifest GET.
pub async fn run_hello(
    scenario: &Scenario,
    scale: Scale,
    target: &Arc<Target>,
    pids: &[u32],
) -> Sample {
    let (_, digest) = hello_manifest();
    let op = op!([digest], |conn, _i| ops::get_manifest(
        conn,
        MANIFEST_REPO,
        "latest",
        false,
        &digest
    ));
    measure(target, scenario.connections(), scale.window(3.0), pids, op).await
}
