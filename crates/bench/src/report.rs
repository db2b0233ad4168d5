//! The results of a compare run and BENCHMARKS.md: medians, ratios, the targets checked one by
//! one, and SVG plots of throughput against connection count.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::machine::Machine;
use crate::measure::Sample;
use crate::svg;

pub const BERTH: &str = "berth";
pub const BERTH_AUTH: &str = "berth+auth";
pub const DISTRIBUTION: &str = "distribution";
pub const HELLO: &str = "axum hello";
/// berth's scale-out replicas again, redirecting blob downloads to presigned storage URLs.
pub const BERTH_REDIRECT: &str = "berth, redirect";

/// `Results::backend` of the two comparisons; each writes its own section of BENCHMARKS.md.
pub const EMBEDDED: &str = "embedded";
pub const SCALE_OUT: &str = "scale-out";
const TITLE: &str = "# Benchmarks: berth and CNCF distribution";
/// The scale-out section's heading: it runs from here to the end of the file.
const SCALE_OUT_HEADING: &str = "## Scale-out: two replicas on PostgreSQL + Garage";

fn embedded() -> String {
    EMBEDDED.into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub id: String,
    pub title: String,
    pub throughput: bool,
    pub unit: String,
    pub connections: usize,
    /// Every repetition's sample, by server label.
    pub samples: BTreeMap<String, Vec<Sample>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub date: String,
    pub command: String,
    /// `embedded` or `scale-out`.
    #[serde(default = "embedded")]
    pub backend: String,
    pub quick: bool,
    pub repeats: usize,
    pub machine: Machine,
    pub versions: BTreeMap<String, String>,
    pub scenarios: Vec<ScenarioResult>,
    /// Each server's peak resident memory over the whole run (VmHWM), bytes.
    pub peak_rss: BTreeMap<String, u64>,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

impl ScenarioResult {
    /// The median headline figure (MiB/s or operations/s) of `server`.
    pub fn rate(&self, server: &str) -> Option<f64> {
        let samples = self.samples.get(server)?;
        median(
            samples
                .iter()
                .map(|s| {
                    if self.throughput {
                        s.mib_per_second()
                    } else {
                        s.ops_per_second()
                    }
                })
                .collect(),
        )
    }

    pub fn p99(&self, server: &str) -> Option<f64> {
        median(self.samples.get(server)?.iter().map(|s| s.p99_ms).collect())
    }

    pub fn p50(&self, server: &str) -> Option<f64> {
        median(self.samples.get(server)?.iter().map(|s| s.p50_ms).collect())
    }

    pub fn errors(&self, server: &str) -> u64 {
        self.samples
            .get(server)
            .map_or(0, |s| s.iter().map(|s| s.errors).sum())
    }

    pub fn peak_rss(&self, server: &str) -> Option<u64> {
        self.samples
            .get(server)?
            .iter()
            .filter_map(|s| s.server.map(|u| u.peak_rss))
            .max()
    }

    pub fn cpu_per_op_ms(&self, server: &str) -> Option<f64> {
        median(
            self.samples
                .get(server)?
                .iter()
                .filter(|s| s.ops > 0)
                .filter_map(|s| s.server.map(|u| u.cpu_seconds * 1000.0 / s.ops as f64))
                .collect(),
        )
    }
}

impl Results {
    pub fn scenario(&self, id: &str) -> Option<&ScenarioResult> {
        self.scenarios.iter().find(|s| s.id == id)
    }

    pub fn total_errors(&self) -> u64 {
        self.scenarios
            .iter()
            .flat_map(|s| s.samples.values())
            .flatten()
            .map(|s| s.errors)
            .sum()
    }

    pub fn first_errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.scenarios {
            for (server, samples) in &s.samples {
                if let Some(e) = samples.iter().find_map(|x| x.first_error.clone()) {
                    out.push(format!("{} on {server}: {e}", s.id));
                }
            }
        }
        out
    }
}

fn fmt_rate(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "–".into(),
    }
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 1.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
        None => "–".into(),
    }
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "–".into(),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1024.0 / 1024.0)
}

/// One target of the issue, checked against the measurements.
struct Check {
    target: String,
    measured: String,
    met: Option<bool>,
}

/// `a` measured against `b`, met when `a ≥ factor × b` (or `≤` with `at_most`).
fn compare_check(
    target: String,
    unit: &str,
    a: Option<f64>,
    b: Option<f64>,
    factor: f64,
    at_most: bool,
) -> Check {
    Check {
        target,
        measured: format!(
            "{} vs {} {unit} = {}",
            fmt_rate(a),
            fmt_rate(b),
            fmt_ratio(a, b)
        ),
        met: a.zip(b).map(|(a, b)| {
            if at_most {
                a <= factor * b
            } else {
                a >= factor * b
            }
        }),
    }
}

/// The largest monolithic blob push of the run.
fn largest_push(r: &Results) -> Option<&ScenarioResult> {
    r.scenarios
        .iter()
        .filter(|s| s.id.starts_with("push-") && !s.id.contains("chunked"))
        .max_by_key(|s| s.id.trim_start_matches("push-").parse::<u64>().unwrap_or(0))
}

/// What auth may cost (issue 17): berth+auth against berth without auth.
fn auth_checks(r: &Results) -> Vec<Check> {
    let mut out = Vec::new();
    for id in ["manifest-get-32", "manifest-head-32"] {
        let Some(s) = r.scenario(id) else { continue };
        out.push(compare_check(
            format!("{}: berth+auth ≥ 50% of berth's requests/s", s.title),
            "req/s",
            s.rate(BERTH_AUTH),
            s.rate(BERTH),
            0.5,
            false,
        ));
    }
    if let Some(s) = r.scenario("small-images-32") {
        out.push(compare_check(
            format!("{}: berth+auth ≥ 85% of berth's images/s", s.title),
            "images/s",
            s.rate(BERTH_AUTH),
            s.rate(BERTH),
            0.85,
            false,
        ));
    }
    if let (Some(a), Some(b)) = (r.peak_rss.get(BERTH_AUTH), r.peak_rss.get(BERTH)) {
        out.push(Check {
            target: "peak resident memory over the whole run: berth+auth ≤ 1.5x berth".into(),
            measured: format!(
                "{} vs {} = {}",
                mib(*a),
                mib(*b),
                fmt_ratio(Some(*a as f64), Some(*b as f64))
            ),
            met: Some(*a * 2 <= *b * 3),
        });
    }
    out
}

/// The scale-out comparison's targets (issue 17): berth's two replicas on PostgreSQL + Garage
/// against distribution on the same Garage.
fn scale_out_checks(r: &Results) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(s) = r.scenario("manifest-get-32") {
        out.push(compare_check(
            format!("{}: ≥ 5x distribution's requests/s", s.title),
            "req/s",
            s.rate(BERTH),
            s.rate(DISTRIBUTION),
            5.0,
            false,
        ));
    }
    if let Some(s) = r.scenario("small-images-32") {
        out.push(compare_check(
            format!("{}: ≥ 2x distribution's images/s", s.title),
            "images/s",
            s.rate(BERTH),
            s.rate(DISTRIBUTION),
            2.0,
            false,
        ));
    }
    if let Some(s) = largest_push(r) {
        out.push(compare_check(
            format!("{}: ≥ 1.5x distribution's throughput", s.title),
            "MiB/s",
            s.rate(BERTH),
            s.rate(DISTRIBUTION),
            1.5,
            false,
        ));
    }
    for s in r.scenarios.iter().filter(|s| s.id.starts_with("pull-")) {
        out.push(compare_check(
            format!(
                "{}, streamed by berth: ≥ distribution's throughput",
                s.title
            ),
            "MiB/s",
            s.rate(BERTH),
            s.rate(DISTRIBUTION),
            1.0,
            false,
        ));
    }
    for s in r.scenarios.iter().filter(|s| s.id.starts_with("pull-")) {
        if s.samples.contains_key(BERTH_REDIRECT) {
            out.push(compare_check(
                format!(
                    "{}, berth redirecting to Garage: ≥ distribution's throughput",
                    s.title
                ),
                "MiB/s",
                s.rate(BERTH_REDIRECT),
                s.rate(DISTRIBUTION),
                1.0,
                false,
            ));
        }
    }
    out
}

fn checks(r: &Results) -> Vec<Check> {
    let mut out = Vec::new();
    let hello32 = r.scenario("hello-32").and_then(|s| s.rate(HELLO));
    for id in ["manifest-get-32", "manifest-head-32", "tag-list-32"] {
        let Some(s) = r.scenario(id) else { continue };
        let (b, d) = (s.rate(BERTH), s.rate(DISTRIBUTION));
        let ratio = b.zip(d).map(|(b, d)| b / d.max(1e-9));
        out.push(Check {
            target: format!("{}: ≥ 5x distribution's requests/s", s.title),
            measured: format!(
                "{} vs {} req/s = {}",
                fmt_rate(b),
                fmt_rate(d),
                fmt_ratio(b, d)
            ),
            met: ratio.map(|x| x >= 5.0),
        });
        let (bp, dp) = (s.p99(BERTH), s.p99(DISTRIBUTION));
        out.push(Check {
            target: format!("{}: p99 ≤ 1/3 of distribution's", s.title),
            measured: format!(
                "{} vs {} ms = {}",
                fmt_ms(bp),
                fmt_ms(dp),
                fmt_ratio(bp, dp)
            ),
            met: bp.zip(dp).map(|(b, d)| b <= d / 3.0),
        });
        out.push(Check {
            target: format!("{}: ≥ half the bare axum endpoint's rate", s.title),
            measured: format!(
                "{} vs {} req/s = {}",
                fmt_rate(b),
                fmt_rate(hello32),
                fmt_ratio(b, hello32)
            ),
            met: b.zip(hello32).map(|(b, h)| b >= h / 2.0),
        });
    }
    if let Some(s) = largest_push(r) {
        let (b, d) = (s.rate(BERTH), s.rate(DISTRIBUTION));
        out.push(Check {
            target: format!("{}: ≥ 1.5x distribution's throughput", s.title),
            measured: format!(
                "{} vs {} MiB/s = {}",
                fmt_rate(b),
                fmt_rate(d),
                fmt_ratio(b, d)
            ),
            met: b.zip(d).map(|(b, d)| b >= 1.5 * d),
        });
        let bound = r.machine.sha256_mib_s.min(r.machine.disk_write_mib_s);
        out.push(Check {
            target: format!(
                "{}: ≥ 75% of min(SHA-256 {:.0}, best durable disk write {:.0}) = {:.0} MiB/s",
                s.title,
                r.machine.sha256_mib_s,
                r.machine.disk_write_mib_s,
                0.75 * bound
            ),
            measured: format!(
                "{} MiB/s = {:.0}% of {bound:.0}",
                fmt_rate(b),
                b.unwrap_or(0.0) * 100.0 / bound.max(1e-9)
            ),
            met: b.map(|b| b >= 0.75 * bound),
        });
    }
    for s in r.scenarios.iter().filter(|s| s.id.starts_with("pull-")) {
        let (b, d) = (s.rate(BERTH), s.rate(DISTRIBUTION));
        out.push(Check {
            target: format!("{}: ≥ distribution's throughput", s.title),
            measured: format!(
                "{} vs {} MiB/s = {}",
                fmt_rate(b),
                fmt_rate(d),
                fmt_ratio(b, d)
            ),
            met: b.zip(d).map(|(b, d)| b >= d),
        });
    }
    if let Some(s) = r.scenario("small-images-32") {
        let (b, d) = (s.rate(BERTH), s.rate(DISTRIBUTION));
        out.push(Check {
            target: format!("{}: ≥ 2x distribution's images/s", s.title),
            measured: format!(
                "{} vs {} images/s = {}",
                fmt_rate(b),
                fmt_rate(d),
                fmt_ratio(b, d)
            ),
            met: b.zip(d).map(|(b, d)| b >= 2.0 * d),
        });
    }
    if let (Some(b), Some(d)) = (r.peak_rss.get(BERTH), r.peak_rss.get(DISTRIBUTION)) {
        out.push(Check {
            target: "peak resident memory over the same run: ≤ half of distribution's".into(),
            measured: format!(
                "{} vs {} = {}",
                mib(*b),
                mib(*d),
                fmt_ratio(Some(*b as f64), Some(*d as f64))
            ),
            met: Some(*b * 2 <= *d),
        });
    }
    out.extend(auth_checks(r));
    out
}

/// Writes the run's section of BENCHMARKS.md at `out` (the embedded comparison's part, or the
/// scale-out section, keeping the other as it was) and its plots and raw samples in
/// `benchmarks/` beside it.
pub fn write(r: &Results, out: &Path) -> anyhow::Result<()> {
    let dir = out.parent().unwrap_or(Path::new("."));
    let plots = dir.join("benchmarks");
    std::fs::create_dir_all(&plots)?;
    let existing = match std::fs::read_to_string(out) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let (embedded_part, scale_out_part) = split_sections(&existing);
    let md = if r.backend == SCALE_OUT {
        let section = scale_out_section(r, &plots)?;
        let before = if embedded_part.trim().is_empty() {
            format!("{TITLE}\n\nThe embedded comparison (`berth-bench compare`) has not been written here yet.\n")
        } else {
            embedded_part.trim_end().to_string() + "\n"
        };
        format!("{before}\n{section}")
    } else {
        let mut md = embedded_section(r, &plots)?;
        if !scale_out_part.is_empty() {
            md.push('\n');
            md.push_str(scale_out_part);
        }
        md
    };
    std::fs::write(out, md)?;
    Ok(())
}

/// BENCHMARKS.md cut where the scale-out section begins: (before, the section to the end).
fn split_sections(text: &str) -> (&str, &str) {
    let at = if text.starts_with(SCALE_OUT_HEADING) {
        Some(0)
    } else {
        text.find(&format!("\n{SCALE_OUT_HEADING}\n"))
            .map(|i| i + 1)
    };
    match at {
        Some(i) => text.split_at(i),
        None => (text, ""),
    }
}

/// The machine the run measured and the servers' versions.
fn machine_table(md: &mut String, r: &Results) -> std::fmt::Result {
    let m = &r.machine;
    writeln!(md, "| | |\n|---|---|")?;
    writeln!(md, "| CPU | {} ({} cores) |", m.cpu_model, m.cores)?;
    writeln!(md, "| Memory | {:.1} GiB |", m.memory_gib)?;
    writeln!(md, "| Kernel | Linux {} |", m.kernel)?;
    writeln!(md, "| SHA-256, one core | {:.0} MiB/s |", m.sha256_mib_s)?;
    writeln!(
        md,
        "| Durable disk write, buffered (1 MiB writes, then fdatasync) | {:.0} MiB/s |",
        m.disk_buffered_mib_s
    )?;
    writeln!(
        md,
        "| Durable disk write, O_DIRECT (4 MiB writes, then fdatasync) | {:.0} MiB/s |",
        m.disk_direct_mib_s
    )?;
    for (name, v) in &r.versions {
        writeln!(md, "| {name} | {v} |")?;
    }
    Ok(())
}

fn targets_table(md: &mut String, checks: Vec<Check>) -> std::fmt::Result {
    writeln!(md, "| Target | Measured | Met |\n|---|---|---|")?;
    for c in checks {
        let met = match c.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        writeln!(md, "| {} | {} | {met} |", c.target, c.measured)?;
    }
    Ok(())
}

/// The embedded comparison: the top of BENCHMARKS.md.
fn embedded_section(r: &Results, plots: &Path) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(md, "{TITLE}\n")?;
    writeln!(
        md,
        "Written by `{}` on {}. {} repetition{} per scenario, alternating the servers (berth, distribution, berth+auth, berth, …); each figure is the median of the repetitions.{}\n",
        r.command,
        r.date,
        r.repeats,
        if r.repeats == 1 { "" } else { "s" },
        if r.quick { " **Quick mode: sizes and durations are cut down; these numbers only show the harness works.**" } else { "" }
    )?;
    writeln!(md, "## Machine and versions\n")?;
    machine_table(&mut md, r)?;
    writeln!(
        md,
        "\nThe servers and the load generator share the machine's cores, on loopback. distribution runs Debian's `docker-registry` on filesystem storage without auth, with its in-memory blob descriptor cache; berth runs on its embedded default (SQLite + files) with `AUTHENTICATION_TYPE: None`, and again as `berth+auth` with accounts on, every request carrying a bearer token from the Docker token flow. Both log only warnings and errors.\n"
    )?;

    writeln!(md, "## Targets\n")?;
    targets_table(&mut md, checks(r))?;

    writeln!(md, "\n## Every scenario\n")?;
    writeln!(md, "Rates are MiB/s for blob scenarios and operations/s otherwise; latencies are per operation (one blob push is POST + PUT, one image push is 5 uploads + the manifest). Peak RSS is the largest resident set sampled during the scenario.\n")?;
    writeln!(
        md,
        "| Scenario | Unit | berth | distribution | berth / distribution | p99 ms berth | p99 ms distribution | berth+auth | p99 ms berth+auth | peak RSS berth | peak RSS distribution | errors (b/d/a) |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for s in r.scenarios.iter().filter(|s| !s.id.starts_with("hello")) {
        let unit = if s.throughput { "MiB/s" } else { "ops/s" };
        writeln!(
            md,
            "| {} | {unit} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{}/{} |",
            s.title,
            fmt_rate(s.rate(BERTH)),
            fmt_rate(s.rate(DISTRIBUTION)),
            fmt_ratio(s.rate(BERTH), s.rate(DISTRIBUTION)),
            fmt_ms(s.p99(BERTH)),
            fmt_ms(s.p99(DISTRIBUTION)),
            fmt_rate(s.rate(BERTH_AUTH)),
            fmt_ms(s.p99(BERTH_AUTH)),
            s.peak_rss(BERTH).map_or("–".into(), mib),
            s.peak_rss(DISTRIBUTION).map_or("–".into(), mib),
            s.errors(BERTH),
            s.errors(DISTRIBUTION),
            s.errors(BERTH_AUTH),
        )?;
    }
    writeln!(md, "\n### The ceiling: a bare axum endpoint\n")?;
    writeln!(md, "The same manifest body and headers from a handler that does nothing else, in its own process.\n")?;
    writeln!(
        md,
        "| Connections | req/s | p50 ms | p99 ms |\n|---|---|---|---|"
    )?;
    for s in r.scenarios.iter().filter(|s| s.id.starts_with("hello")) {
        writeln!(
            md,
            "| {} | {} | {} | {} |",
            s.connections,
            fmt_rate(s.rate(HELLO)),
            fmt_ms(s.p50(HELLO)),
            fmt_ms(s.p99(HELLO))
        )?;
    }
    writeln!(
        md,
        "\n### Peak resident memory over the whole run (VmHWM)\n"
    )?;
    writeln!(md, "| Server | Peak RSS |\n|---|---|")?;
    for (server, bytes) in &r.peak_rss {
        writeln!(md, "| {server} | {} |", mib(*bytes))?;
    }
    writeln!(md, "\n### Server CPU time per operation (ms)\n")?;
    writeln!(
        md,
        "| Scenario | berth | distribution | berth+auth |\n|---|---|---|---|"
    )?;
    for s in r.scenarios.iter().filter(|s| !s.id.starts_with("hello")) {
        writeln!(
            md,
            "| {} | {} | {} | {} |",
            s.title,
            fmt_ms(s.cpu_per_op_ms(BERTH)),
            fmt_ms(s.cpu_per_op_ms(DISTRIBUTION)),
            fmt_ms(s.cpu_per_op_ms(BERTH_AUTH))
        )?;
    }

    writeln!(md, "\n## Plots\n")?;
    for (file, title, head, latency) in [
        (
            "manifest-get.svg",
            "Manifest GET by tag: requests/s",
            false,
            false,
        ),
        (
            "manifest-head.svg",
            "Manifest HEAD by tag: requests/s",
            true,
            false,
        ),
        (
            "manifest-get-p99.svg",
            "Manifest GET by tag: p99 latency (ms)",
            false,
            true,
        ),
    ] {
        let connections = [1usize, 8, 32, 128];
        let verb = if head { "head" } else { "get" };
        let mut series = Vec::new();
        for server in [BERTH, DISTRIBUTION, BERTH_AUTH, HELLO] {
            if head && server == HELLO {
                continue;
            }
            let values: Vec<Option<f64>> = connections
                .iter()
                .map(|c| {
                    let id = if server == HELLO {
                        format!("hello-{c}")
                    } else {
                        format!("manifest-{verb}-{c}")
                    };
                    let s = r.scenario(&id)?;
                    if latency {
                        s.p99(server)
                    } else {
                        s.rate(server)
                    }
                })
                .collect();
            if values.iter().any(Option::is_some) {
                series.push((server.to_string(), values));
            }
        }
        let labels: Vec<String> = connections.iter().map(|c| c.to_string()).collect();
        std::fs::write(
            plots.join(file),
            svg::line_chart(title, "connections", &labels, &series),
        )?;
        writeln!(md, "![{title}](benchmarks/{file})\n")?;
    }
    let mut bars = Vec::new();
    for s in r.scenarios.iter().filter(|s| !s.id.starts_with("hello")) {
        if let (Some(b), Some(d)) = (s.rate(BERTH), s.rate(DISTRIBUTION)) {
            bars.push((s.id.clone(), b / d.max(1e-9)));
        }
    }
    std::fs::write(
        plots.join("ratios.svg"),
        svg::ratio_bars("berth / distribution, per scenario (1 = equal)", &bars),
    )?;
    writeln!(
        md,
        "![berth / distribution per scenario](benchmarks/ratios.svg)\n"
    )?;
    writeln!(md, "The raw samples are in `benchmarks/results.json`.")?;
    writeln!(
        md,
        "\nManifest GET with pulls recorded in the usage logs against not recorded: [benchmarks/pull-logs.md](benchmarks/pull-logs.md) (`berth-bench pull-logs`)."
    )?;
    writeln!(
        md,
        "\nSignature verification beside concurrent pushes (1,000 cosign-signed images, pushers' rate against a control window, and how soon they show as verified): [benchmarks/trust.md](benchmarks/trust.md) (`berth-bench trust`)."
    )?;
    writeln!(md, "\n{PROXY_LINE}")?;
    md.push_str(&proxy_verdicts(&plots.join("proxy.md")));
    std::fs::write(plots.join("results.json"), serde_json::to_string_pretty(r)?)?;
    Ok(md)
}

/// The proxy cache's line, whose figures `berth-bench proxy` writes in benchmarks/proxy.md.
const PROXY_LINE: &str = "Pulls through a proxy cache organization, CNCF distribution as the upstream (a cached pull against a local pull, a first pull through the cache against a direct pull from the upstream, a mirror sync of an image of the same size): [benchmarks/proxy.md](benchmarks/proxy.md) (`berth-bench proxy`).";

/// The verdicts of the last `berth-bench proxy` run (its report's bullets on the targets),
/// repeated under [`PROXY_LINE`]; nothing when it has not run.
fn proxy_verdicts(report: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(report) else {
        return String::new();
    };
    let bullets: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("- A cached pull")
                || l.starts_with("- A first pull")
                || l.starts_with("- Over the link")
        })
        .collect();
    if bullets.is_empty() {
        return String::new();
    }
    format!("\n{}\n", bullets.join("\n"))
}

/// The scale-out comparison: the last section of BENCHMARKS.md.
fn scale_out_section(r: &Results, plots: &Path) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(md, "{SCALE_OUT_HEADING}\n")?;
    writeln!(
        md,
        "Written by `{}` on {}. {} repetition{} per scenario, alternating the servers (berth, distribution, berth+auth, berth, …); each figure is the median of the repetitions.{}\n",
        r.command,
        r.date,
        r.repeats,
        if r.repeats == 1 { "" } else { "s" },
        if r.quick { " **Quick mode: sizes and durations are cut down; these numbers only show the harness works.**" } else { "" }
    )?;
    writeln!(
        md,
        "A throwaway PostgreSQL and a single-node Garage, started by `scripts/postgres.sh` and `scripts/garage.sh` as for the test suite (fsync off in both), share the machine with the registries and the load generator, on loopback. \
         berth runs as two replicas (two `berth serve` processes, one config) on one PostgreSQL database and one key prefix of the Garage bucket, streaming blobs itself (`FEATURE_PROXY_STORAGE: true`); the bench's connections go to the two replicas in turn, as behind a round-robin load balancer. \
         `berth+auth` is two more replicas on a database of their own with accounts on, every request carrying a bearer token from the Docker token flow. \
         `berth, redirect` is each blob pull again, right after the others, on the first pair switched to `FEATURE_PROXY_STORAGE: false` for it (config file rewritten, SIGHUP): berth answers 307 with a presigned Garage URL and the client fetches the bytes from Garage, as podman or docker do. \
         distribution is one Debian `docker-registry` with its S3 driver on the same Garage (a root directory of its own), redirects disabled so blobs stream through it, its in-memory blob descriptor cache, no auth. \
         berth's memory and CPU figures add up its two replicas; PostgreSQL's and Garage's count for neither server. \
         Garage stores identical 1 MiB blocks once, and the bench's blobs repeat one random 1 MiB pattern, so pushes cost Garage hashing rather than disk writes, for both servers alike.\n"
    )?;
    writeln!(md, "### Machine and versions (scale-out run)\n")?;
    machine_table(&mut md, r)?;
    writeln!(md, "\n### Targets (scale-out)\n")?;
    targets_table(&mut md, scale_out_checks(r))?;

    writeln!(md, "\n### Every scenario (scale-out)\n")?;
    writeln!(md, "Rates are MiB/s for blob scenarios and operations/s otherwise; latencies are per operation. Peak RSS is the largest resident set sampled during the scenario (both replicas together for berth).\n")?;
    writeln!(
        md,
        "| Scenario | Unit | berth | distribution | berth / distribution | p99 ms berth | p99 ms distribution | berth+auth | p99 ms berth+auth | berth, redirect | redirect / distribution | peak RSS berth | peak RSS distribution | errors (b/d/a/r) |"
    )?;
    writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )?;
    for s in &r.scenarios {
        let unit = if s.throughput { "MiB/s" } else { "ops/s" };
        writeln!(
            md,
            "| {} | {unit} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{}/{}/{} |",
            s.title,
            fmt_rate(s.rate(BERTH)),
            fmt_rate(s.rate(DISTRIBUTION)),
            fmt_ratio(s.rate(BERTH), s.rate(DISTRIBUTION)),
            fmt_ms(s.p99(BERTH)),
            fmt_ms(s.p99(DISTRIBUTION)),
            fmt_rate(s.rate(BERTH_AUTH)),
            fmt_ms(s.p99(BERTH_AUTH)),
            fmt_rate(s.rate(BERTH_REDIRECT)),
            fmt_ratio(s.rate(BERTH_REDIRECT), s.rate(DISTRIBUTION)),
            s.peak_rss(BERTH).map_or("–".into(), mib),
            s.peak_rss(DISTRIBUTION).map_or("–".into(), mib),
            s.errors(BERTH),
            s.errors(DISTRIBUTION),
            s.errors(BERTH_AUTH),
            s.errors(BERTH_REDIRECT),
        )?;
    }
    writeln!(
        md,
        "\n### Peak resident memory over the whole run (scale-out, VmHWM)\n"
    )?;
    writeln!(md, "| Server | Peak RSS |\n|---|---|")?;
    for (server, bytes) in &r.peak_rss {
        let what = if server.starts_with(BERTH) {
            " (sum of the two replicas' peaks)"
        } else {
            ""
        };
        writeln!(md, "| {server}{what} | {} |", mib(*bytes))?;
    }
    writeln!(md, "\n### Server CPU time per operation (scale-out, ms)\n")?;
    writeln!(md, "berth's is both replicas' together. With redirects Garage serves the bytes, and its CPU is not counted.\n")?;
    writeln!(
        md,
        "| Scenario | berth | distribution | berth+auth | berth, redirect |\n|---|---|---|---|---|"
    )?;
    for s in &r.scenarios {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            s.title,
            fmt_ms(s.cpu_per_op_ms(BERTH)),
            fmt_ms(s.cpu_per_op_ms(DISTRIBUTION)),
            fmt_ms(s.cpu_per_op_ms(BERTH_AUTH)),
            fmt_ms(s.cpu_per_op_ms(BERTH_REDIRECT))
        )?;
    }
    let mut bars = Vec::new();
    for s in &r.scenarios {
        if let (Some(b), Some(d)) = (s.rate(BERTH), s.rate(DISTRIBUTION)) {
            bars.push((s.id.clone(), b / d.max(1e-9)));
        }
        if let (Some(b), Some(d)) = (s.rate(BERTH_REDIRECT), s.rate(DISTRIBUTION)) {
            bars.push((format!("{} (redirect)", s.id), b / d.max(1e-9)));
        }
    }
    std::fs::write(
        plots.join("scale-out-ratios.svg"),
        svg::ratio_bars(
            "Scale-out: berth (two replicas) / distribution, per scenario (1 = equal)",
            &bars,
        ),
    )?;
    writeln!(
        md,
        "\n![Scale-out: berth / distribution per scenario](benchmarks/scale-out-ratios.svg)\n"
    )?;
    writeln!(
        md,
        "The raw samples are in `benchmarks/results-scale-out.json`."
    )?;
    std::fs::write(
        plots.join("results-scale-out.json"),
        serde_json::to_string_pretty(r)?,
    )?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(backend: &str) -> Results {
        Results {
            date: "today".into(),
            command: format!("berth-bench compare --backend {backend}"),
            backend: backend.into(),
            quick: true,
            repeats: 1,
            machine: Machine::default(),
            versions: BTreeMap::new(),
            scenarios: Vec::new(),
            peak_rss: BTreeMap::new(),
        }
    }

    #[test]
    fn each_comparison_replaces_only_its_own_section() {
        let dir = std::env::temp_dir().join(format!("berth-bench-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("BENCHMARKS.md");
        let _ = std::fs::remove_file(&out);

        // A scale-out section alone gets the title above it.
        write(&results(SCALE_OUT), &out).unwrap();
        let first = std::fs::read_to_string(&out).unwrap();
        assert!(first.starts_with(TITLE));
        assert_eq!(first.matches(SCALE_OUT_HEADING).count(), 1);

        // The embedded run replaces the top and keeps the scale-out section.
        write(&results(EMBEDDED), &out).unwrap();
        let second = std::fs::read_to_string(&out).unwrap();
        assert!(second.starts_with(TITLE));
        assert!(second.contains("--backend embedded"));
        assert!(second.contains("--backend scale-out"));
        assert!(!second.contains("has not been written here yet"));
        assert_eq!(second.matches(SCALE_OUT_HEADING).count(), 1);
        assert!(second.find("--backend embedded") < second.find(SCALE_OUT_HEADING));

        // A new scale-out run keeps the embedded part and replaces its own section.
        let mut again = results(SCALE_OUT);
        again.command = "berth-bench compare --backend scale-out --repeats 1".into();
        write(&again, &out).unwrap();
        let third = std::fs::read_to_string(&out).unwrap();
        assert!(third.contains("--backend embedded"));
        assert!(third.contains("--backend scale-out --repeats 1"));
        assert_eq!(third.matches(SCALE_OUT_HEADING).count(), 1);
        let (top, _) = split_sections(&third);
        assert_eq!(top, split_sections(&second).0);

        // And an embedded run twice changes nothing below.
        write(&results(EMBEDDED), &out).unwrap();
        let fourth = std::fs::read_to_string(&out).unwrap();
        assert_eq!(split_sections(&fourth).1, split_sections(&third).1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
