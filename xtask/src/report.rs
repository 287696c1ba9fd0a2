//! The results of `cargo xtask bench all` and the benchmark page drawn from them.
//!
//! Each benchmark returns its figures as [`Area`]s (besides printing its own tables); `bench
//! all` collects them with the [`Machine`] they ran on into [`Results`], writes
//! target/bench/results.json, and renders docs/benchmarks.md with one SVG per area in
//! docs/benchmarks/. `bench report` renders the page again from that JSON.
//!
//! A row's ratio is how many times better wskit did than the peer in that row: ours / peer
//! when higher is better (throughput), peer / ours when lower is better (memory, CPU time,
//! latency). Above 1 wskit is ahead, below 1 behind, whatever the unit.

use std::{fmt::Write as _, fs, path::Path, process::Command};

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// Which direction of a figure is the good one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Better {
    /// Throughput: more is better.
    HigherIsBetter,
    /// Memory, CPU time, latency: less is better.
    LowerIsBetter,
}

/// One figure of one case: ours, and the peer's from the same run when there is a peer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Row {
    /// What was measured, e.g. `100x20B`.
    pub(crate) case: String,
    /// The unit of both figures, e.g. `msgs/s`.
    pub(crate) unit: String,
    /// What ran on our side, e.g. `wskit serve`.
    pub(crate) ours_name: String,
    /// Our figure.
    pub(crate) ours: f64,
    /// The peer, when there is one.
    pub(crate) peer_name: Option<String>,
    /// The peer's figure from the same run.
    pub(crate) peer_value: Option<f64>,
    /// How many times better ours is than the peer's (above 1: ahead).
    pub(crate) ratio: Option<f64>,
    /// Which direction is better.
    pub(crate) better: Better,
}

impl Row {
    /// A row comparing ours with a peer; the ratio is computed here.
    pub(crate) fn vs(
        case: impl Into<String>,
        unit: impl Into<String>,
        better: Better,
        (ours_name, ours): (&str, f64),
        (peer_name, peer): (&str, f64),
    ) -> Self {
        Self {
            case: case.into(),
            unit: unit.into(),
            ours_name: ours_name.to_owned(),
            ours,
            peer_name: Some(peer_name.to_owned()),
            peer_value: Some(peer),
            ratio: ratio(ours, peer, better),
            better,
        }
    }

    /// A row of ours alone.
    pub(crate) fn alone(
        case: impl Into<String>,
        unit: impl Into<String>,
        better: Better,
        (ours_name, ours): (&str, f64),
    ) -> Self {
        Self {
            case: case.into(),
            unit: unit.into(),
            ours_name: ours_name.to_owned(),
            ours,
            peer_name: None,
            peer_value: None,
            ratio: None,
            better,
        }
    }
}

/// How many times better `ours` is than `peer`; `None` unless both are finite and positive.
pub(crate) fn ratio(ours: f64, peer: f64, better: Better) -> Option<f64> {
    if !(ours.is_finite() && peer.is_finite() && ours > 0.0 && peer > 0.0) {
        return None;
    }
    Some(match better {
        Better::HigherIsBetter => ours / peer,
        Better::LowerIsBetter => peer / ours,
    })
}

/// The results of one benchmark (one table and one plot on the page).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Area {
    /// Short name, also the SVG's file name (`echo` -> docs/benchmarks/echo.svg).
    pub(crate) key: String,
    /// Heading on the page.
    pub(crate) title: String,
    /// The command that measures this area alone.
    pub(crate) reproduce: String,
    /// What the figures mean: setup, durations, caveats.
    pub(crate) notes: Vec<String>,
    /// The figures.
    pub(crate) rows: Vec<Row>,
    /// Why the area has no figures (a missing tool, a failed run), when it has none.
    pub(crate) error: Option<String>,
    /// Load average (1 min) when the area started.
    pub(crate) load_before: Option<f64>,
    /// Wall-clock seconds the area took.
    pub(crate) secs: Option<f64>,
}

impl Area {
    /// An area with no figures yet.
    pub(crate) fn new(key: &str, title: &str, reproduce: &str) -> Self {
        Self {
            key: key.to_owned(),
            title: title.to_owned(),
            reproduce: reproduce.to_owned(),
            notes: Vec::new(),
            rows: Vec::new(),
            error: None,
            load_before: None,
            secs: None,
        }
    }

    /// Adds a note.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }
}

/// The machine a run was on, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Machine {
    /// CPUs available to the run.
    pub(crate) cores: usize,
    /// `model name` of /proc/cpuinfo.
    pub(crate) cpu_model: String,
    /// Kernel release.
    pub(crate) kernel: String,
    /// Load averages (1, 5, 15 min) when the run started.
    pub(crate) load_start: [f64; 3],
    /// Load averages when it ended.
    pub(crate) load_end: [f64; 3],
    /// UTC time the run started, ISO 8601.
    pub(crate) started: String,
    /// UTC time it ended.
    pub(crate) finished: String,
    /// `git describe`-like commit of the code measured (`+dirty` with local changes).
    pub(crate) commit: String,
}

impl Machine {
    /// Reads what describes the machine now; `finished` and `load_end` are set by [`Self::end`].
    pub(crate) fn now() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "model name").then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
        let mut commit = output("git", &["rev-parse", "--short=12", "HEAD"]);
        if !output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
            commit.push_str("+dirty");
        }
        let started = utc_now();
        Self {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            kernel,
            load_start: loadavg(),
            load_end: loadavg(),
            finished: started.clone(),
            started,
            commit,
        }
    }

    /// Records the end of the run.
    pub(crate) fn end(&mut self) {
        self.load_end = loadavg();
        self.finished = utc_now();
    }
}

/// Everything one `bench all` run measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Results {
    /// Whether the run used `--quick` (short durations, small counts).
    pub(crate) quick: bool,
    /// The machine and the time.
    pub(crate) machine: Machine,
    /// One per benchmark, in the order they ran.
    pub(crate) areas: Vec<Area>,
}

/// The first line of a command's stdout, or `unknown`.
fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(crate::util::root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The current UTC time, `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// Seconds since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian calendar).
fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Days to a civil date: eras of 400 years (146,097 days), the year starting in March.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The three load averages of /proc/loadavg (zeros when unreadable).
pub(crate) fn loadavg() -> [f64; 3] {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v = text.split_whitespace().map(|f| f.parse().unwrap_or(0.0));
    [
        v.next().unwrap_or(0.0),
        v.next().unwrap_or(0.0),
        v.next().unwrap_or(0.0),
    ]
}

// ---------------------------------------------------------------------------------------------
// The page.
// ---------------------------------------------------------------------------------------------

/// A figure with as many digits as it needs (4 significant ones at most, no exponent).
pub(crate) fn num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "-".to_owned()
    } else if a >= 1000.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 10.0 {
        format!("{v:.2}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else {
        // Four significant digits below 1.
        let digits = (-a.log10()).floor() as usize + 4;
        format!("{v:.digits$}")
    }
}

/// A ratio as shown in tables and plots.
fn show_ratio(r: Option<f64>) -> String {
    r.map_or_else(
        || "-".to_owned(),
        |r| {
            if r < 0.1 {
                format!("{r:.3}x")
            } else {
                format!("{r:.2}x")
            }
        },
    )
}

/// The Markdown page: the machine, then one section per area (table and plot).
pub(crate) fn markdown(results: &Results, svg_dir: &str) -> String {
    let m = &results.machine;
    let mut md = String::new();
    md += "# Benchmarks\n\n";
    md += "<!-- Generated by `cargo xtask bench all` (or `cargo xtask bench report` from \
           target/bench/results.json). Do not edit by hand. -->\n\n";
    if results.quick {
        md += "> **Quick run** (`cargo xtask bench all --quick`): short durations and small \
               counts, on a shared machine. The figures show the shape, not steady-state \
               numbers; a full run (`cargo xtask bench all`) takes longer and is steadier.\n\n";
    }
    md += "Every area below ran in one go, wskit and its peers side by side in the same run, on \
           the machine described here. **Ratio** is how many times better wskit did than the \
           peer: ours / peer's when higher is better (throughput), peer's / ours when lower is \
           better (memory, CPU time, latency). Above 1.00x wskit is ahead. Each plot draws the \
           ratios of its table as bars from the 1.0 line (log scale): to the right, ahead.\n\n";
    md += "## Machine\n\n";
    md += "| | |\n|---|---|\n";
    let _ = writeln!(md, "| CPU | {} x {} |", m.cores, m.cpu_model);
    let _ = writeln!(md, "| kernel | Linux {} |", m.kernel);
    let _ = writeln!(md, "| run | {} to {} (UTC) |", m.started, m.finished);
    let _ = writeln!(md, "| commit | {} |", m.commit);
    let load = |l: [f64; 3]| format!("{:.2} / {:.2} / {:.2}", l[0], l[1], l[2]);
    let _ = writeln!(
        md,
        "| load average (1 / 5 / 15 min) | {} at the start, {} at the end |",
        load(m.load_start),
        load(m.load_end)
    );
    md += "\nThe machine is shared (other builds and benchmarks ran at the same time): a load \
           average above the core count means the benchmarks competed for CPU, and single \
           figures can be off by tens of percent. Compare ratios, which come from one run, \
           rather than absolute figures across runs.\n\n";

    md += "## Summary\n\n| area | cases with a peer | ahead | behind | lowest ratio | highest ratio |\n\
           |---|---:|---:|---:|---:|---:|\n";
    for a in &results.areas {
        let ratios: Vec<f64> = a.rows.iter().filter_map(|r| r.ratio).collect();
        if let Some(e) = &a.error
            && a.rows.is_empty()
        {
            let _ = writeln!(
                md,
                "| [{}](#{}) | not run: {} | | | | |",
                a.title,
                anchor(&a.title),
                one_line(e)
            );
            continue;
        }
        let lo = ratios.iter().copied().reduce(f64::min);
        let hi = ratios.iter().copied().reduce(f64::max);
        let _ = writeln!(
            md,
            "| [{}](#{}) | {} | {} | {} | {} | {} |",
            a.title,
            anchor(&a.title),
            ratios.len(),
            ratios.iter().filter(|r| **r >= 1.0).count(),
            ratios.iter().filter(|r| **r < 1.0).count(),
            show_ratio(lo),
            show_ratio(hi)
        );
    }
    md += "\n";

    for a in &results.areas {
        let _ = writeln!(md, "## {}\n", a.title);
        let _ = write!(md, "Reproduce: `{}`", a.reproduce);
        if let Some(s) = a.secs {
            let _ = write!(md, " (in this run: {s:.0} s, building included");
            if let Some(l) = a.load_before {
                let _ = write!(md, "; load average {l:.2} when it started");
            }
            md += ")";
        }
        md += "\n\n";
        for n in &a.notes {
            let _ = writeln!(md, "{n}\n");
        }
        if let Some(e) = &a.error {
            let _ = writeln!(md, "**Not measured in this run:** {}\n", one_line(e));
        }
        if a.rows.is_empty() {
            continue;
        }
        md += "| case | unit | peer | peer's figure | wskit | ratio | better |\n\
               |---|---|---|---:|---:|---:|---|\n";
        for r in &a.rows {
            let ours = if r.ours_name.is_empty() || r.ours_name == "wskit" {
                num(r.ours)
            } else {
                format!("{} ({})", num(r.ours), r.ours_name)
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.case,
                r.unit,
                r.peer_name.as_deref().unwrap_or("-"),
                r.peer_value.map_or_else(|| "-".to_owned(), num),
                ours,
                show_ratio(r.ratio),
                match r.better {
                    Better::HigherIsBetter => "higher",
                    Better::LowerIsBetter => "lower",
                }
            );
        }
        md += "\n";
        if a.rows.iter().any(|r| r.ratio.is_some()) {
            let _ = writeln!(
                md,
                "![{}: ratio per case]({svg_dir}/{}.svg)\n",
                a.title, a.key
            );
        }
    }
    md
}

/// GitHub's heading anchor: lower case, spaces to dashes, punctuation dropped.
fn anchor(title: &str) -> String {
    title
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn one_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().replace('|', "\\|")
}

// ---------------------------------------------------------------------------------------------
// The plots.
// ---------------------------------------------------------------------------------------------

/// Colours of the peers, in the order they first appear in an area.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
];

/// Where the x axis of a plot has ticks, when they are in its range.
const TICKS: [f64; 17] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0, 1.25, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0,
    500.0,
];

/// The SVG of one area: a horizontal grouped bar chart, one group per case, one bar per peer,
/// each bar drawn from the 1.0 line to the ratio on a log axis (right: ahead; left: behind).
/// `None` when the area has no ratio to draw.
pub(crate) fn svg(area: &Area) -> Result<Option<String>> {
    // Cases in order of first appearance, each with its (peer, ratio) bars.
    let mut cases: Vec<(String, Vec<(&str, f64)>)> = Vec::new();
    let mut peers: Vec<&str> = Vec::new();
    for r in &area.rows {
        let (Some(peer), Some(ratio)) = (r.peer_name.as_deref(), r.ratio) else {
            continue;
        };
        if !peers.contains(&peer) {
            peers.push(peer);
        }
        let label = if r.unit.is_empty() {
            r.case.clone()
        } else {
            format!("{} ({})", r.case, r.unit)
        };
        match cases.iter_mut().find(|(c, _)| *c == label) {
            Some((_, bars)) => bars.push((peer, ratio)),
            None => cases.push((label, vec![(peer, ratio)])),
        }
    }
    if cases.is_empty() {
        return Ok(None);
    }
    let per_case = cases.iter().map(|(_, b)| b.len()).max().unwrap_or(1);
    let bar_h = 16u32;
    let group_h = bar_h * per_case as u32 + 12;
    let legend_h = 22 * peers.len().div_ceil(3) as u32;
    let height = 70 + legend_h + group_h * cases.len() as u32 + 54;
    let longest = cases
        .iter()
        .map(|(c, _)| c.chars().count())
        .max()
        .unwrap_or(10);
    let label_w = (longest as u32 * 8 + 16).clamp(120, 480);
    let width = label_w + 560;

    let (mut lo, mut hi) = (1.0f64, 1.0f64);
    for (_, bars) in &cases {
        for (_, r) in bars {
            lo = lo.min(*r);
            hi = hi.max(*r);
        }
    }
    let (lo, hi) = ((lo / 1.3).min(0.5), (hi * 1.3).max(2.0));

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        root.draw(&Text::new(
            format!(
                "{}: wskit vs peer (ratio, above 1 = wskit ahead)",
                area.title
            ),
            (10, 8),
            ("sans-serif", 20).into_font().color(&BLACK),
        ))
        .map_err(plot_err)?;
        // Legend.
        for (i, peer) in peers.iter().enumerate() {
            let x = 10 + (i % 3) as i32 * 260;
            let y = 34 + (i / 3) as i32 * 22;
            let c = PALETTE[i % PALETTE.len()];
            root.draw(&Rectangle::new([(x, y), (x + 14, y + 14)], c.filled()))
                .map_err(plot_err)?;
            root.draw(&Text::new(
                format!("vs {peer}"),
                (x + 20, y),
                ("sans-serif", 15).into_font().color(&BLACK),
            ))
            .map_err(plot_err)?;
        }
        let area_top = 40 + legend_h as i32;
        let plot = root.margin(area_top as u32, 10, 10, 20);
        let n = cases.len() as f64;
        let mut chart = ChartBuilder::on(&plot)
            .x_label_area_size(44)
            .y_label_area_size(label_w)
            .build_cartesian_2d((lo..hi).log_scale(), 0.0..n)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_y_axis()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .x_desc("ratio, log scale: <- wskit behind | wskit ahead ->")
            .axis_desc_style(("sans-serif", 14))
            .draw()
            .map_err(plot_err)?;
        // Ticks at round ratios (plotters' own pick few on a short log range).
        for t in TICKS.iter().copied().filter(|t| (lo..=hi).contains(t)) {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(t, 0.0), (t, n)],
                    BLACK.mix(0.15).stroke_width(1),
                )))
                .map_err(plot_err)?;
            let (px, py) = chart.backend_coord(&(t, 0.0));
            root.draw(&Text::new(
                format!("{t}x"),
                (px, py + 6),
                ("sans-serif", 13).into_font().color(&BLACK).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Top,
                    ),
                ),
            ))
            .map_err(plot_err)?;
        }
        for (i, (label, bars)) in cases.iter().enumerate() {
            // Case i occupies y in [n - i - 1, n - i], the first case at the top.
            let top = n - i as f64;
            let slot = 1.0 / (per_case as f64 + 0.8);
            for (j, (peer, r)) in bars.iter().enumerate() {
                let k = peers.iter().position(|p| p == peer).unwrap_or(0);
                let c = PALETTE[k % PALETTE.len()];
                let y1 = top - slot * (0.4 + j as f64);
                let y0 = y1 - slot;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(1.0, y0), (*r, y1)],
                        c.filled(),
                    )))
                    .map_err(plot_err)?;
                let (px, py) = chart.backend_coord(&(*r, (y0 + y1) / 2.0));
                let right = *r >= 1.0;
                let style = ("sans-serif", 13).into_font().color(&BLACK).pos(
                    plotters::style::text_anchor::Pos::new(
                        if right {
                            plotters::style::text_anchor::HPos::Left
                        } else {
                            plotters::style::text_anchor::HPos::Right
                        },
                        plotters::style::text_anchor::VPos::Center,
                    ),
                );
                let dx = if right { 4 } else { -4 };
                root.draw(&Text::new(show_ratio(Some(*r)), (px + dx, py), style))
                    .map_err(plot_err)?;
            }
            let (px, py) = chart.backend_coord(&(lo, top - 0.5));
            let style = ("sans-serif", 15).into_font().color(&BLACK).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Center,
                ),
            );
            root.draw(&Text::new(label.clone(), (px - 8, py), style))
                .map_err(plot_err)?;
        }
        // The line at 1.0: level with the peer.
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(1.0, 0.0), (1.0, n)],
                BLACK.stroke_width(2),
            )))
            .map_err(plot_err)?;
        root.present().map_err(plot_err)?;
    }
    Ok(Some(out))
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {e:?}")
}

/// Writes docs/benchmarks.md (`page`) and one SVG per area with ratios into `svg_dir`,
/// removing SVGs of areas that no longer have one.
pub(crate) fn write_page(results: &Results, page: &Path, svg_dir: &Path) -> Result<()> {
    fs::create_dir_all(svg_dir).with_context(|| format!("creating {}", svg_dir.display()))?;
    let rel = svg_dir
        .strip_prefix(page.parent().unwrap_or(Path::new("")))
        .unwrap_or(svg_dir)
        .to_string_lossy()
        .into_owned();
    let mut keep = Vec::new();
    for a in &results.areas {
        if let Some(svg) = svg(a)? {
            let file = svg_dir.join(format!("{}.svg", a.key));
            fs::write(&file, svg).with_context(|| format!("writing {}", file.display()))?;
            keep.push(file);
        }
    }
    for e in fs::read_dir(svg_dir)?.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "svg") && !keep.contains(&p) {
            fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    fs::write(page, markdown(results, &rel)).with_context(|| format!("writing {}", page.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Results {
        serde_json::from_str(include_str!("../testdata/results.json")).expect("fixture parses")
    }

    #[test]
    fn ratio_is_how_many_times_better() {
        assert_eq!(ratio(200.0, 100.0, Better::HigherIsBetter), Some(2.0));
        assert_eq!(ratio(200.0, 100.0, Better::LowerIsBetter), Some(0.5));
        assert_eq!(ratio(0.0, 100.0, Better::HigherIsBetter), None);
        assert_eq!(ratio(f64::NAN, 100.0, Better::HigherIsBetter), None);
        let r = Row::vs(
            "idle",
            "B/conn",
            Better::LowerIsBetter,
            ("wskit", 5000.0),
            ("tungstenite", 10000.0),
        );
        assert_eq!(r.ratio, Some(2.0));
    }

    #[test]
    fn dates_are_utc_civil() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_655_319), "2026-12-07T14:55:19Z");
    }

    #[test]
    fn numbers_keep_their_digits() {
        assert_eq!(num(123_456.7), "123457");
        assert_eq!(num(612.34), "612.3");
        assert_eq!(num(1.23456), "1.235");
        assert_eq!(num(0.012_345), "0.01235");
    }

    #[test]
    fn page_from_fixed_results() {
        let results = fixture();
        let md = markdown(&results, "benchmarks");
        assert!(md.contains("**Quick run**"), "{md}");
        assert!(md.contains("| CPU | 2 x Test CPU @ 2.00GHz |"), "{md}");
        assert!(
            md.contains("1.75 / 2.00 / 2.25 at the start, 3.00 / 2.50 / 2.00 at the end"),
            "{md}"
        );
        // Throughput: ours / peer's.
        assert!(
            md.contains("| 100x20B | msgs/s | fastwebsockets | 100000 | 95000 | 0.95x | higher |"),
            "{md}"
        );
        // Memory: peer's / ours.
        assert!(
            md.contains(
                "| idle connection | B/conn | tungstenite | 12000 | 6000 | 2.00x | lower |"
            ),
            "{md}"
        );
        // A row without a peer, and an area that did not run.
        assert!(
            md.contains("| idle connection | B/conn | - | - | 6774 | - | lower |"),
            "{md}"
        );
        assert!(
            md.contains("**Not measured in this run:** wrk not found"),
            "{md}"
        );
        assert!(md.contains("| [Static files](#static-files) | not run: wrk not found"));
        assert!(md.contains("![WebSocket echo: ratio per case](benchmarks/echo.svg)"));
        assert!(
            md.contains(
                "(in this run: 40 s, building included; load average 1.75 when it started)"
            )
        );
        assert!(!md.contains("benchmarks/http.svg"));
        // Summary: echo has 3 ratios, 2 ahead.
        assert!(
            md.contains("| [WebSocket echo](#websocket-echo) | 3 | 2 | 1 | 0.95x | 1.40x |"),
            "{md}"
        );
    }

    #[test]
    fn plot_from_fixed_results() {
        let results = fixture();
        let echo = svg(&results.areas[0]).expect("draws").expect("has ratios");
        assert!(echo.starts_with("<svg"), "{echo}");
        for text in [
            "100x20B (msgs/s)",
            "vs fastwebsockets",
            "vs tungstenite",
            "0.95x",
            "1.40x",
        ] {
            assert!(echo.contains(text), "{text} missing from the SVG");
        }
        // One bar per ratio, in the peer's colour.
        assert_eq!(echo.matches("fill=\"#1F77B4\"").count(), 2 + 1, "{echo}");
        assert_eq!(svg(&results.areas[1]).expect("draws"), None);
    }

    #[test]
    fn results_round_trip_through_json() {
        let results = fixture();
        let json = serde_json::to_string_pretty(&results).expect("serializes");
        let back: Results = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, results);
    }
}
