//! `cargo xtask`: the project's automation, one module per subcommand.
//!
//! ```text
//! cargo xtask ci                 fmt, clippy, tests, docs, dependency rules, benches build, fuzz smoke
//! cargo xtask deps               check the layering invariants of docs/architecture.md
//! cargo xtask fuzz [--secs N]    run every fuzz target for N seconds (default 10)
//! cargo xtask bench [NAME]       run benchmarks (criterion micro-benchmarks when NAME is omitted)
//! cargo xtask autobahn server    Autobahn|Testsuite fuzzingclient against `wskit serve`
//! ```
//!
//! xtask never depends on workspace crates: it drives cargo and external tools as processes.

mod autobahn;
mod bench;
mod ci;
mod deps;
mod flags;
mod fuzz;
mod turn;
mod util;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  ci                  everything CI checks: fmt, clippy, tests, docs, deps, benches build, fuzz smoke
  deps                check the dependency rules (sans-IO crates have no tokio, layers point down)
  fuzz [--secs N]     run every fuzz target for N seconds each (default 10); needs cargo-fuzz
  bench [NAME]        criterion micro-benchmarks (no NAME or `micro`), `echo` (wskit serve vs
                      fastwebsockets vs tokio-tungstenite), `rss` (memory per idle connection),
                      `turn` (wskit turn vs coturn with turnutils_uclient)
  autobahn server     the Autobahn|Testsuite fuzzingclient (517 cases) against `wskit serve`
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
        "fuzz" => fuzz::main(&mut args),
        "bench" => bench::main(&mut args),
        "autobahn" => match args.next_positional().as_deref() {
            Some("server") => {
                args.finish()?;
                autobahn::server()
            }
            _ => bail!("usage: cargo xtask autobahn server"),
        },
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
