//! `cargo xtask bench all [--quick] [--only a,b]` and `cargo xtask bench report`.
//!
//! `all` runs the benchmarks one after the other (each as its own subcommand would, with the
//! defaults of that subcommand, or short durations and small counts with `--quick`), collects
//! their figures, writes target/bench/results.json after every area (so an interrupted run
//! keeps what it measured), and at the end renders docs/benchmarks.md and
//! docs/benchmarks/*.svg (see `report`). A benchmark that fails or lacks a tool leaves its
//! area on the page with the reason, and the others still run.
//!
//! `report` renders the page again from target/bench/results.json, without measuring.

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Instant, SystemTime},
};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::flags::Args;
use crate::proc::target_dir;
use crate::report::{Area, Better, Machine, Results, Row, loadavg, write_page};
use crate::util::{cargo, root, step};

/// The benchmarks `all` runs, in order: name (as in `cargo xtask bench NAME`) and the title
/// of its area when it produced none.
const BENCHES: [(&str, &str); 10] = [
    ("micro", "Codec micro-benchmarks (criterion)"),
    ("echo", "WebSocket echo server"),
    ("rss", "Memory per idle WebSocket connection"),
    ("http", "Static files over HTTP/1.1"),
    ("proxy", "WebSocket-to-TCP bridge"),
    ("turn", "TURN relay"),
    ("mqtt", "MQTT client"),
    ("files", "File transfer (proto-files, tus)"),
    ("cluster", "Cluster fan-out"),
    ("broadcast", "Broadcast to one channel"),
];

/// Where `all` keeps its results.
fn results_path() -> PathBuf {
    target_dir().join("bench/results.json")
}

/// `cargo xtask bench all`.
pub(crate) fn all(args: &mut Args) -> Result<()> {
    let quick = args.flag("quick");
    let only = args.value("only")?;
    args.finish()?;
    let selected: Vec<&str> = match &only {
        None => BENCHES.iter().map(|(n, _)| *n).collect(),
        Some(list) => {
            let mut v = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let Some((n, _)) = BENCHES.iter().find(|(n, _)| *n == name) else {
                    bail!(
                        "unknown benchmark `{name}` in --only (known: {})",
                        BENCHES.map(|(n, _)| n).join(", ")
                    );
                };
                v.push(*n);
            }
            v
        }
    };
    let mut results = Results {
        quick,
        machine: Machine::now(),
        areas: Vec::new(),
    };
    // `--only` re-measures some areas: the others are kept from the last saved run, with that
    // run's machine section and length, so the page still shows every area; each re-measured
    // area says in a note when, on which commit and how long it ran.
    let mut rerun: Option<Machine> = None;
    if only.is_some()
        && let Ok(text) = fs::read_to_string(results_path())
        && let Ok(old) = serde_json::from_str::<Results>(&text)
        && !old.areas.is_empty()
    {
        rerun = Some(std::mem::replace(&mut results.machine, old.machine));
        results.quick = old.quick;
        results.areas = old.areas;
    }
    for name in selected {
        eprintln!("\n######## cargo xtask bench {name}{}", quick_tag(quick));
        let load = loadavg()[0];
        let started = Instant::now();
        let outcome = run_one(name, quick);
        let secs = started.elapsed().as_secs_f64();
        let areas = outcome.unwrap_or_else(|e| {
            eprintln!("######## bench {name} failed: {e:#}");
            let title = BENCHES
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(name, |(_, t)| t);
            let mut area = Area::new(name, title, &format!("cargo xtask bench {name}"));
            area.error = Some(format!("{e:#}"));
            vec![area]
        });
        for mut area in areas {
            area.load_before = Some(load);
            area.secs = Some(secs);
            if let Some(m) = &rerun {
                area.note(format!(
                    "Re-measured on its own (`--only`) at {} on commit {}, {}; the machine \
                     section above is the run the other areas come from.",
                    m.started,
                    m.commit,
                    if quick { "a quick run" } else { "full length" }
                ));
            }
            // A re-measured area takes the place of the one kept from the last run.
            match results.areas.iter_mut().find(|a| a.key == area.key) {
                Some(kept) => *kept = area,
                None => results.areas.push(area),
            }
        }
        save(&results)?;
    }
    if rerun.is_none() {
        results.machine.end();
    }
    save(&results)?;
    render(&results)
}

fn quick_tag(quick: bool) -> &'static str {
    if quick { " (quick)" } else { "" }
}

/// Runs one benchmark with the parameters of a full or a quick run.
fn run_one(name: &str, quick: bool) -> Result<Vec<Area>> {
    let pick = |full: u64, short: u64| if quick { short } else { full };
    let areas = match name {
        "micro" => micro(quick)?,
        "echo" => super::echo(pick(5, 1), 1)?,
        "rss" => vec![super::rss(pick(10_000, 1000))?],
        "http" => vec![super::http(pick(5, 1), 50)?],
        "proxy" => vec![crate::bench_proxy::run(pick(5, 1))?],
        "turn" => vec![crate::turn::bench(quick)?],
        "mqtt" => vec![crate::bench_mqtt::run(1000, pick(1000, 100), quick)?],
        "files" => vec![super::bench_files::run(pick(1024, 64), 65536)?],
        "cluster" => super::bench_cluster::run(pick(10_000, 500), pick(100, 20))?,
        "broadcast" => {
            let subs: &[u64] = if quick { &[1000] } else { &[1000, 10_000] };
            vec![crate::bench_broadcast::area(subs, pick(100, 20), 64)?]
        }
        other => bail!("no benchmark `{other}`"),
    };
    Ok(areas)
}

fn save(results: &Results) -> Result<()> {
    let path = results_path();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_string_pretty(results)?;
    fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    eprintln!("results written to {}", path.display());
    Ok(())
}

/// Writes docs/benchmarks.md and docs/benchmarks/*.svg.
fn render(results: &Results) -> Result<()> {
    let docs = root().join("docs");
    let page = docs.join("benchmarks.md");
    write_page(results, &page, &docs.join("benchmarks"))?;
    eprintln!("written: {} and docs/benchmarks/*.svg", page.display());
    Ok(())
}

/// `cargo xtask bench report [--from FILE]`: the page again from saved results.
pub(crate) fn report(args: &mut Args) -> Result<()> {
    let from = args.value("from")?.map_or_else(results_path, PathBuf::from);
    args.finish()?;
    let text = fs::read_to_string(&from).with_context(|| {
        format!(
            "reading {} (run `cargo xtask bench all` first)",
            from.display()
        )
    })?;
    let results: Results =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", from.display()))?;
    render(&results)
}

// ---------------------------------------------------------------------------------------------
// Criterion.
// ---------------------------------------------------------------------------------------------

/// One criterion benchmark's result.
#[derive(Debug, Clone, PartialEq)]
struct Bench {
    group: String,
    function: String,
    value: String,
    /// Nanoseconds per iteration (criterion's slope estimate, or the mean).
    ns: f64,
    /// Bytes per iteration, when the group declared a byte throughput.
    bytes: Option<f64>,
}

impl Bench {
    /// GB/s when the throughput is in bytes (bytes per nanosecond), else `None`.
    fn gb_per_sec(&self) -> Option<f64> {
        self.bytes.map(|b| b / self.ns)
    }
}

/// Runs the criterion benchmarks and turns the comparisons with a peer into areas.
fn micro(quick: bool) -> Result<Vec<Area>> {
    let since = SystemTime::now();
    let mut cmd = cargo();
    // Bench targets only: the library's and the binaries' test harnesses take no criterion
    // options. The release profile (the bench profile adds only line tables, for profilers)
    // shares the dependencies' build with the release binaries of the other benchmarks.
    cmd.args([
        "bench",
        "-p",
        "wskit-benches",
        "--bench",
        "*",
        "--profile",
        "release",
    ]);
    if quick {
        cmd.args([
            "--",
            "--warm-up-time",
            "0.2",
            "--measurement-time",
            "0.5",
            "--sample-size",
            "10",
        ]);
    }
    // A bench target that fails (or is not a criterion one and refuses the options) leaves
    // the others' results: use them, and say so.
    let failed = step("criterion benchmarks", &mut cmd).err();
    let benches = criterion_results(&target_dir().join("criterion"), Some(since))?;
    if benches.is_empty() {
        return Err(failed.unwrap_or_else(|| {
            anyhow::anyhow!("criterion wrote no results under target/criterion")
        }));
    }
    let mut areas = micro_areas(&benches, "cargo xtask bench micro");
    if quick && let Some(first) = areas.first_mut() {
        first.note(
            "This quick run passed criterion `--warm-up-time 0.2 --measurement-time 0.5 \
             --sample-size 10`.",
        );
    }
    if let (Some(e), Some(first)) = (failed, areas.first_mut()) {
        first.note(format!(
            "`cargo bench` did not finish cleanly ({e:#}); the figures are those criterion wrote."
        ));
    }
    Ok(areas)
}

/// Every `new/benchmark.json` with its `new/estimates.json` under `dir` (written after
/// `since`, when given: older ones are from runs of other code).
fn criterion_results(dir: &Path, since: Option<SystemTime>) -> Result<Vec<Bench>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            if p.file_name().is_some_and(|n| n == "new") {
                let estimates = p.join("estimates.json");
                let fresh = since.is_none_or(|since| {
                    fs::metadata(&estimates)
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t >= since)
                });
                if fresh && let Some(b) = read_bench(&p.join("benchmark.json"), &estimates)? {
                    out.push(b);
                }
            } else {
                stack.push(p);
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.group, size_of(&a.value), &a.value, &a.function).cmp(&(
            &b.group,
            size_of(&b.value),
            &b.value,
            &b.function,
        ))
    });
    Ok(out)
}

/// The size a criterion parameter starts with (`20Bx52428` -> 20, `16KiB` -> 16384), so that
/// cases sort by size rather than as text; 0 when it starts with none.
fn size_of(value: &str) -> u64 {
    let digits = value.len() - value.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let n: u64 = value[..digits].parse().unwrap_or(0);
    let rest = &value[digits..];
    let unit = if rest.starts_with("KiB") {
        1 << 10
    } else if rest.starts_with("MiB") {
        1 << 20
    } else if rest.starts_with("GiB") {
        1 << 30
    } else {
        1
    };
    n * unit
}

fn read_bench(benchmark: &Path, estimates: &Path) -> Result<Option<Bench>> {
    let (Ok(b), Ok(e)) = (fs::read_to_string(benchmark), fs::read_to_string(estimates)) else {
        return Ok(None);
    };
    let b: Value = serde_json::from_str(&b).with_context(|| benchmark.display().to_string())?;
    let e: Value = serde_json::from_str(&e).with_context(|| estimates.display().to_string())?;
    let s = |k: &str| {
        b.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let point = |k: &str| e.get(k)?.get("point_estimate")?.as_f64();
    let Some(ns) = point("slope").or_else(|| point("mean")) else {
        return Ok(None);
    };
    let bytes = b
        .get("throughput")
        .and_then(|t| t.get("Bytes").or_else(|| t.get("BytesDecimal")))
        .and_then(Value::as_f64);
    Ok(Some(Bench {
        group: s("group_id"),
        function: s("function_id"),
        value: s("value_str"),
        ns,
        bytes,
    }))
}

/// The criterion comparisons: (group, or group prefix ending in `/`; our function; the peer's
/// function).
const PAIRS: [(&str, &str, &str); 2] = [
    ("mask", "ws_frame::mask::apply", "fastwebsockets::unmask"),
    ("decode/", "ws_frame", "tungstenite"),
];

fn group_matches(pattern: &str, group: &str) -> bool {
    if pattern.ends_with('/') {
        group.starts_with(pattern)
    } else {
        group == pattern
    }
}

/// One area for wskit against peer crates (plus ws-frame's own deflate figures), one for
/// the two deflate engines.
fn micro_areas(benches: &[Bench], reproduce: &str) -> Vec<Area> {
    let find = |group: &str, function: &str, value: &str| {
        benches
            .iter()
            .find(|b| b.group == group && b.function == function && b.value == value)
    };
    // Throughput when the group has one (higher is better), else time per iteration.
    let figure = |b: &Bench| match b.gb_per_sec() {
        Some(v) => (v, "GB/s", Better::HigherIsBetter),
        None => (b.ns, "ns", Better::LowerIsBetter),
    };
    let mut codec = Area::new("micro", "Codec micro-benchmarks (criterion)", reproduce);
    codec.note(
        "Throughput of the sans-IO codec on one core (criterion, in-memory buffers): masking \
         against fastwebsockets' unmask, decoding streams of masked client frames against \
         tungstenite; ws-frame's permessage-deflate (level 1, JSON text) has no peer here.",
    );
    for (pattern, ours_fn, peer_fn) in PAIRS {
        for b in benches
            .iter()
            .filter(|b| group_matches(pattern, &b.group) && b.function == ours_fn)
        {
            let Some(p) = find(&b.group, peer_fn, &b.value) else {
                continue;
            };
            let (ours, unit, better) = figure(b);
            let (theirs, _, _) = figure(p);
            codec.rows.push(Row::vs(
                format!("{} {}", b.group, b.value),
                unit,
                better,
                (ours_fn, ours),
                (peer_fn, theirs),
            ));
        }
    }
    for b in benches
        .iter()
        .filter(|b| b.group.starts_with("permessage_deflate/") && b.function == "ws_frame")
    {
        let (ours, unit, better) = figure(b);
        codec.rows.push(Row::alone(
            format!("{} {}", b.group, b.value),
            unit,
            better,
            ("ws_frame", ours),
        ));
    }
    let mut engines = Area::new(
        "deflate-engines",
        "Deflate engines: miniz_oxide and zlib-rs (criterion)",
        reproduce,
    );
    engines.note(
        "Not wskit against a peer: the two deflate engines ws-frame can be built on, on the same \
         JSON input at the same level and window. Here the \"wskit\" column is miniz_oxide and \
         the peer is zlib-rs: a ratio below 1 means zlib-rs is faster.",
    );
    for b in benches
        .iter()
        .filter(|b| b.group.starts_with("engines/") && b.function == "miniz_oxide")
    {
        let Some(p) = find(&b.group, "zlib-rs", &b.value) else {
            continue;
        };
        let (ours, unit, better) = figure(b);
        let (theirs, _, _) = figure(p);
        engines.rows.push(Row::vs(
            format!("{} {}", b.group.trim_start_matches("engines/"), b.value),
            unit,
            better,
            ("miniz_oxide", ours),
            ("zlib-rs", theirs),
        ));
    }
    let mut areas = vec![codec];
    if !engines.rows.is_empty() {
        areas.push(engines);
    }
    areas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, group: &str, function: &str, value: &str, ns: f64, bytes: u64) {
        let d = dir
            .join(group.replace('/', "_"))
            .join(function.replace(':', "_"))
            .join(value)
            .join("new");
        fs::create_dir_all(&d).expect("mkdir");
        let b = serde_json::json!({
            "group_id": group, "function_id": function, "value_str": value,
            "throughput": {"Bytes": bytes},
            "full_id": format!("{group}/{function}/{value}"),
        });
        let e = serde_json::json!({
            "mean": {"point_estimate": ns * 1.1},
            "slope": {"point_estimate": ns},
        });
        fs::write(d.join("benchmark.json"), b.to_string()).expect("write");
        fs::write(d.join("estimates.json"), e.to_string()).expect("write");
    }

    #[test]
    fn sizes_sort_as_numbers() {
        assert_eq!(size_of("20Bx52428"), 20);
        assert_eq!(size_of("16KiB"), 16 << 10);
        assert_eq!(size_of("1MiBx4"), 1 << 20);
        assert_eq!(size_of("server_2B"), 0);
    }

    #[test]
    fn criterion_pairs_become_rows() {
        let dir = std::env::temp_dir().join(format!("xtask-criterion-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        write(
            &dir,
            "mask",
            "ws_frame::mask::apply",
            "64KiB",
            6400.0,
            65536,
        );
        write(
            &dir,
            "mask",
            "fastwebsockets::unmask",
            "64KiB",
            6400.0,
            65536,
        );
        write(&dir, "mask", "ws_frame::mask::apply", "1KiB", 100.0, 1024);
        write(&dir, "mask", "fastwebsockets::unmask", "1KiB", 200.0, 1024);
        write(&dir, "mask", "memcpy", "1KiB", 50.0, 1024);
        write(
            &dir,
            "decode/text",
            "ws_frame",
            "20Bx1000",
            20_000.0,
            20_000,
        );
        write(
            &dir,
            "decode/text",
            "tungstenite",
            "20Bx1000",
            10_000.0,
            20_000,
        );
        write(
            &dir,
            "permessage_deflate/compress",
            "ws_frame",
            "1KiB",
            1024.0,
            1024,
        );
        write(&dir, "engines/inflate", "miniz_oxide", "1KiB", 512.0, 1024);
        write(&dir, "engines/inflate", "zlib-rs", "1KiB", 256.0, 1024);
        let benches = criterion_results(&dir, None).expect("reads");
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(benches.len(), 10);
        let areas = micro_areas(&benches, "cargo xtask bench micro");
        let codec = &areas[0];
        let rows: Vec<(&str, Option<f64>)> = codec
            .rows
            .iter()
            .map(|r| (r.case.as_str(), r.ratio))
            .collect();
        assert_eq!(
            rows,
            [
                ("mask 1KiB", Some(2.0)),
                ("mask 64KiB", Some(1.0)),
                ("decode/text 20Bx1000", Some(0.5)),
                ("permessage_deflate/compress 1KiB", None),
            ]
        );
        assert_eq!(codec.rows[0].unit, "GB/s");
        assert!((codec.rows[0].ours - 10.24).abs() < 1e-9);
        assert_eq!(
            codec.rows[0].peer_name.as_deref(),
            Some("fastwebsockets::unmask")
        );
        let engines = &areas[1];
        assert_eq!(engines.rows.len(), 1);
        assert_eq!(engines.rows[0].case, "inflate 1KiB");
        assert_eq!(engines.rows[0].ratio, Some(0.5));
    }
}
