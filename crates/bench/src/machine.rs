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
    /// The better of the two durable write rates below, MiB/s.
    pub disk_write_mib_s: f64,
    /// Writing a file in 1 MiB buffered writes and `fdatasync` at the end, MiB/s.
    pub disk_buffered_mib_s: f64,
    /// Writing a file in 4 MiB `O_DIRECT` writes and `fdatasync` at the end, MiB/s (0 where
    /// the filesystem refuses direct I/O).
    pub disk_direct_mib_s: f64,
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

/// Durable write rate of `dir`'s file system: `total` bytes, then fdatasync, all timed;
/// with `direct`, through O_DIRECT in 4 MiB writes.
pub fn disk_write_rate(dir: &Path, total: u64, direct: bool) -> std::io::Result<f64> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("disk-rate.tmp");
    let step = if direct { 4usize << 20 } else { 1 << 20 };
    // Direct I/O wants aligned memory: take an aligned window of a larger buffer.
    let memory = vec![0xa5u8; step + 4096];
    let start = memory.as_ptr().align_offset(4096);
    let buffer = &memory[start..start + step];
    let started = Instant::now();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    let mut file = options.open(&path)?;
    for _ in 0..total / step as u64 {
        file.write_all(buffer)?;
    }
    file.sync_data()?;
    let rate = (total >> 20) as f64 / started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path)?;
    Ok(rate)
}

pub fn describe(work: &Path, quick: bool) -> Machine {
    let size = if quick { 256u64 << 20 } else { 2048u64 << 20 };
    let buffered = disk_write_rate(work, size, false).unwrap_or(0.0);
    let direct = disk_write_rate(work, size, true).unwrap_or(0.0);
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
        disk_write_mib_s: buffered.max(direct),
        disk_buffered_mib_s: buffered,
        disk_direct_mib_s: direct,
    }
}

/// Free bytes on `dir`'s filesystem.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a writable statvfs for the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}
