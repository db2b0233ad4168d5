//! The standard `process_*` metrics (the names every Prometheus client library uses), read
//! from `/proc` at each scrape. Elsewhere than Linux there are none.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

/// What `/proc` says about this process.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessFacts {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub start_time_seconds: f64,
    pub open_fds: f64,
    pub max_fds: f64,
}

/// Parses `/proc/self/stat` with the clock tick rate, page size and boot time (`btime` of
/// `/proc/stat`, seconds since the epoch).
fn parse_stat(
    stat: &str,
    ticks_per_second: f64,
    page_size: f64,
    boot_time: f64,
) -> Option<ProcessFacts> {
    // The command name (field 2) may hold spaces and parentheses: fields are counted after
    // its closing parenthesis, from field 3 (the state).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    Some(ProcessFacts {
        cpu_seconds: (field(14)? + field(15)?) / ticks_per_second,
        start_time_seconds: boot_time + field(22)? / ticks_per_second,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page_size,
        ..ProcessFacts::default()
    })
}

#[cfg(target_os = "linux")]
fn read() -> Option<ProcessFacts> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot_time: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf only reads a system constant.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if ticks <= 0 || page <= 0 {
        return None;
    }
    let mut facts = parse_stat(&stat, ticks as f64, page as f64, boot_time)?;
    facts.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        facts.max_fds = limit.rlim_cur as f64;
    }
    Some(facts)
}

#[cfg(not(target_os = "linux"))]
fn read() -> Option<ProcessFacts> {
    None
}

/// Writes the process metrics at each scrape.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(facts) = read() else {
            return Ok(());
        };
        // Counters get their `_total` suffix from the encoder.
        let cpu = ConstCounter::new(facts.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            MetricType::Counter,
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                facts.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                facts.virtual_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                facts.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                facts.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                facts.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            ConstGauge::new(value).encode(encoder.encode_descriptor(
                name,
                help,
                None,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as a process may name itself.
        let stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1000 \
                    123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let facts = parse_stat(stat, 100.0, 4096.0, 1_700_000_000.0).unwrap();
        assert_eq!(facts.cpu_seconds, 3.0);
        assert_eq!(facts.start_time_seconds, 1_700_000_010.0);
        assert_eq!(facts.virtual_bytes, 123_456_789.0);
        assert_eq!(facts.resident_bytes, 2048.0 * 4096.0);
        assert_eq!(parse_stat("garbage", 100.0, 4096.0, 0.0), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_facts() {
        let facts = read().expect("facts from /proc");
        assert!(
            facts.resident_bytes > 0.0 && facts.open_fds > 0.0,
            "{facts:?}"
        );
        assert!(facts.start_time_seconds > 1_600_000_000.0, "{facts:?}");
    }
}
