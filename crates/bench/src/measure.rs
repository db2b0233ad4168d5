//! Runs one operation from many connections at once and measures it: throughput, latency
//! percentiles, errors, and the server's memory and CPU time from /proc.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::client::{Conn, Target};
use crate::ops::Moved;

/// One operation: gets a connection and the operation's index, gives the connection back.
pub type Op =
    Arc<dyn Fn(Conn, u64) -> BoxFuture<'static, (Conn, anyhow::Result<Moved>)> + Send + Sync>;

/// Builds an [`Op`] from an expression giving a future, which may use `conn: &mut Conn`, the
/// index `i` and the listed captures (cloned for each call).
#[macro_export]
macro_rules! op {
    ([$($capture:ident),*], |$conn:ident, $i:ident| $body:expr) => {
        std::sync::Arc::new(move |owned: $crate::client::Conn, $i: u64| {
            $(let $capture = $capture.clone();)*
            let fut: futures::future::BoxFuture<'static, ($crate::client::Conn, anyhow::Result<$crate::ops::Moved>)> =
                Box::pin(async move {
                    let mut owned = owned;
                    let result = {
                        let $conn: &mut $crate::client::Conn = &mut owned;
                        $body.await
                    };
                    (owned, result)
                });
            fut
        }) as $crate::measure::Op
    };
}

/// How much work a measurement does.
#[derive(Clone, Copy)]
pub enum Amount {
    /// Exactly this many operations, shared among the connections.
    Count(u64),
    /// As many operations as fit in this time.
    For(Duration),
}

/// The server's resources during a measurement (of all its processes together, for replicas).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Usage {
    /// The largest resident set seen (sampled every 10 ms), in bytes.
    pub peak_rss: u64,
    /// User plus system CPU time used, in seconds.
    pub cpu_seconds: f64,
}

/// What one measurement found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    pub ops: u64,
    pub requests: u64,
    pub bytes: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub first_error: Option<String>,
    pub server: Option<Usage>,
}

impl Sample {
    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }

    pub fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.seconds.max(1e-9)
    }
}

/// /proc readings of one process.
pub mod proc {
    fn status_kib(pid: u32, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// Resident memory now, in bytes.
    pub fn rss(pid: u32) -> Option<u64> {
        status_kib(pid, "VmRSS:").map(|k| k * 1024)
    }

    /// The largest resident memory since the process started, in bytes.
    pub fn peak_rss(pid: u32) -> Option<u64> {
        status_kib(pid, "VmHWM:").map(|k| k * 1024)
    }

    /// User plus system CPU time so far, in seconds.
    pub fn cpu_seconds(pid: u32) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces; the fields after it are plain numbers.
        let after = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        // Linux reports these in USER_HZ, which is 100 on every architecture it runs on.
        Some((utime + stime) / 100.0)
    }
}

/// Samples the memory of a server's processes (one, or each replica) until finished.
struct Watch {
    pids: Vec<u32>,
    cpu_before: f64,
    peak: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

/// The resident memory of `pids` together, in bytes.
fn total_rss(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|&pid| proc::rss(pid)).sum()
}

fn total_cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&pid| proc::cpu_seconds(pid)).sum()
}

impl Watch {
    fn start(pids: &[u32]) -> Watch {
        let pids = pids.to_vec();
        let peak = Arc::new(AtomicU64::new(total_rss(&pids)));
        let (p, watched) = (peak.clone(), pids.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tick.tick().await;
                p.fetch_max(total_rss(&watched), Ordering::Relaxed);
            }
        });
        Watch {
            cpu_before: total_cpu(&pids),
            pids,
            peak,
            task,
        }
    }

    fn finish(self) -> Usage {
        self.task.abort();
        self.peak
            .fetch_max(total_rss(&self.pids), Ordering::Relaxed);
        Usage {
            peak_rss: self.peak.load(Ordering::Relaxed),
            cpu_seconds: total_cpu(&self.pids) - self.cpu_before,
        }
    }
}

struct WorkerResult {
    histogram: Histogram<u64>,
    ops: u64,
    requests: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `op` on `connections` connections until `amount` is done, watching the server
/// processes `pids` (none: no server figures).
pub async fn measure(
    target: &Arc<Target>,
    connections: usize,
    amount: Amount,
    pids: &[u32],
    op: Op,
) -> Sample {
    let next = Arc::new(AtomicU64::new(0));
    let watch = (!pids.is_empty()).then(|| Watch::start(pids));
    let started = Instant::now();
    let deadline = match amount {
        Amount::For(d) => Some(started + d),
        Amount::Count(_) => None,
    };
    let limit = match amount {
        Amount::Count(n) => n,
        Amount::For(_) => u64::MAX,
    };
    let workers: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (target, next, op) = (target.clone(), next.clone(), op.clone());
            tokio::spawn(async move {
                let mut result = WorkerResult {
                    histogram: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                        .expect("valid bounds"),
                    ops: 0,
                    requests: 0,
                    bytes: 0,
                    errors: 0,
                    first_error: None,
                };
                let mut conn = Conn::new(target);
                loop {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= limit {
                        break;
                    }
                    let t = Instant::now();
                    let (back, outcome) = op(conn, i).await;
                    conn = back;
                    let micros = t.elapsed().as_micros() as u64;
                    match outcome {
                        Ok(moved) => {
                            result.ops += 1;
                            result.requests += moved.requests;
                            result.bytes += moved.bytes;
                            let _ = result.histogram.record(micros.max(1));
                        }
                        Err(e) => {
                            result.errors += 1;
                            result.first_error.get_or_insert_with(|| format!("{e:#}"));
                        }
                    }
                }
                result
            })
        })
        .collect();
    let mut histogram: Histogram<u64> =
        Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    let mut sample = Sample::default();
    for w in workers {
        let r = w.await.expect("a worker does not panic");
        let _ = histogram.add(&r.histogram);
        sample.ops += r.ops;
        sample.requests += r.requests;
        sample.bytes += r.bytes;
        sample.errors += r.errors;
        if sample.first_error.is_none() {
            sample.first_error = r.first_error;
        }
    }
    sample.seconds = started.elapsed().as_secs_f64();
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    if sample.ops > 0 {
        sample.p50_ms = ms(0.50);
        sample.p90_ms = ms(0.90);
        sample.p99_ms = ms(0.99);
    }
    sample.server = watch.map(Watch::finish);
    sample
}
