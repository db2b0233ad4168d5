//! Facts about the machine the report needs: CPU, memory, and the two rates that bound a
//! blob push (single-core SHA-256 and durable disk writes).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    /// Single-core SHA-256 over 1 MiB buffers, MiB/s.
    pub sha256_mib_s: f64,
    /// Writing a file in 1 MiB writes and `fdatasync` at the end, MiB/s.
    pub disk_write_mib_s: f64,
}

fn proc_field(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

/// Single-core SHA-256 rate over `total` bytes.
pub fn sha256_rate(total: u64) -> f64 {
    let buffer = vec![0x5au8; 1 << 20];
    let mut hasher = Sha256::new();
    let started = Instant::now();
    for _ in 0..total >> 20 {
        hasher.update(&buffer);
    }
    std::hint::black_box(hasher.finalize());
    (total >> 20) as f64 / started.elapsed().as_secs_f64()
}

/// Durable write rate of `dir`'s file system: `total` bytes, then fdatasync, all timed.
pub fn disk_write_rate(dir: &Path, total: u64) -> std::io::Result<f64> {
    let path = dir.join("disk-rate.tmp");
    let buffer = vec![0xa5u8; 1 << 20];
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    for _ in 0..total >> 20 {
        file.write_all(&buffer)?;
    }
    file.sync_data()?;
    let rate = (total >> 20) as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

pub fn describe(work: &Path, quick: bool) -> Machine {
    let size = if quick { 256u64 << 20 } else { 2048u64 << 20 };
    Machine {
        cpu_model: proc_field("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: proc_field("/proc/meminfo", "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        sha256_mib_s: sha256_rate(size / 2),
        disk_write_mib_s: disk_write_rate(work, size).unwrap_or(0.0),
    }
}
