//! `cargo xtask`: the project's automation, one module per subcommand.
//!
//! ```text
//! cargo xtask ci                 fmt, clippy, tests, docs, dependency rules, benches build, fuzz smoke
//! cargo xtask deps               check the layering invariants of docs/architecture.md
//! cargo xtask examples           build every crate's examples and run each for a moment
//! cargo xtask fuzz [--secs N]    run every fuzz target for N seconds (default 10)
//! cargo xtask bench [NAME]       run benchmarks (criterion micro-benchmarks when NAME is omitted)
//! cargo xtask bench all          every benchmark, then docs/benchmarks.md with its plots
//! cargo xtask autobahn server    Autobahn|Testsuite fuzzingclient against `wskit serve`
//! cargo xtask autobahn client    Autobahn|Testsuite fuzzingserver against ws-client
//! cargo xtask autobahn both      both of the above side by side (as `cargo xtask ci` runs them)
//! cargo xtask autobahn both      both of the above side by side (as `cargo xtask ci` runs them)
//! cargo xtask interop browser    headless Chromium against `wskit serve` (test page, echo, SSE, upload)
//! cargo xtask quickstart         run every quick-start block of README.md against the built binary
//! ```
//!
//! Runs write their artefacts under target/; the committed copies (docs/conformance/autobahn-*.md,
//! docs/test-page.png) change only with `--update`.
//!
//! xtask never depends on workspace crates: it drives cargo and external tools as processes.

mod autobahn;
mod bench;
mod bench_broadcast;
mod bench_mqtt;
mod bench_proxy;
mod ci;
mod deps;
mod examples;
mod flags;
mod fuzz;
mod interop;
mod modgraph;
mod proc;
mod quickstart;
mod report;
mod turn;
mod util;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  ci                  everything CI checks: fmt, clippy, tests, README quick start, examples,
                      docs, deps, benches build, Autobahn, browser, fuzz smoke; then a summary
                      of what was skipped and a check that the working tree is unchanged
                      [--no-autobahn] [--no-browser] [--no-fuzz] [--no-quickstart]
                      [--no-tree-check] [--fuzz-secs N]
  deps                check the dependency rules (sans-IO crates have no tokio, layers point down)
  examples            build every crate's examples, run each for a moment (servers paired with
                      their clients, and with tinyproxy, coturn, mosquitto when installed)
  fuzz [--secs N]     run every fuzz target for N seconds each (default 10); needs cargo-fuzz
  bench [NAME]        criterion micro-benchmarks (no NAME or `micro`), `echo` (wskit serve vs
                      fastwebsockets vs tokio-tungstenite), `rss` (memory per idle connection),
                      `turn` (wskit turn vs coturn with turnutils_uclient), `http` (static files,
                      wskit vs nginx with wrk), `proxy` (wskit proxy vs websockify and websocat),
                      `mqtt`, `files`, `cluster` (three nodes on Redis/NATS vs Socket.IO 4),
                      `broadcast` (one channel, 1,000 and 10,000 subscribers)
  bench all           every benchmark in one go; writes target/bench/results.json, then
                      docs/benchmarks.md with one SVG plot per area in docs/benchmarks/
                      [--quick]: short durations and small counts; [--only a,b]: re-measure
                      a subset, keeping the other areas of the last saved run
  bench report        docs/benchmarks.md and its plots again from target/bench/results.json
                      [--from FILE]
  autobahn server     the Autobahn|Testsuite fuzzingclient (517 cases) against `wskit serve`
  autobahn client     the Autobahn|Testsuite fuzzingserver (517 cases) against ws-client
  autobahn both       both suites side by side (as ci runs them)
                      [--update]: copy the summary to docs/conformance/ (otherwise target/ only)
  interop browser     headless Chromium opens the test page of `wskit serve`: WebSocket echo with
                      permessage-deflate, an SSE event, a form upload (needs chromium, node)
                      [--wskit PATH] [--update]: copy the screenshot to docs/test-page.png
  quickstart          run every ```sh block of README.md's quick start against the built
                      `wskit` (debug build, or --wskit PATH); fails naming the block that broke
";

fn main() -> Result<()> {
    let mut args = flags::Args::from_env();
    let Some(cmd) = args.next_positional() else {
        print!("{USAGE}");
        return Ok(());
    };
    match cmd.as_str() {
        "ci" => ci::main(&mut args),
        "deps" => deps::run(),
        "examples" => {
            args.finish()?;
            examples::run().map(drop)
        }
        "fuzz" => fuzz::main(&mut args),
        "bench" => bench::main(&mut args),
        "interop" => match args.next_positional().as_deref() {
            Some("browser") => {
                let bin = args.value("wskit")?.map(std::path::PathBuf::from);
                let update = args.flag("update");
                args.finish()?;
                interop::browser(bin, update)
            }
            _ => bail!("usage: cargo xtask interop browser [--wskit PATH] [--update]"),
        },
        "quickstart" => {
            let bin = args.value("wskit")?.map(std::path::PathBuf::from);
            args.finish()?;
            quickstart::run(bin)
        }
        "autobahn" => {
            let side = match args.next_positional().as_deref() {
                Some("server") => autobahn::Side::Server,
                Some("client") => autobahn::Side::Client,
                Some("both") => {
                    args.finish()?;
                    return autobahn::run_both();
                }
                _ => bail!("usage: cargo xtask autobahn server|client [--update] | both"),
            };
            let update = args.flag("update");
            args.finish()?;
            autobahn::run(side, update)
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
