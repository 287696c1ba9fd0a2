//! `cargo xtask bench [NAME]`: benchmarks. Without a name: the criterion micro-benchmarks.

use crate::flags::Args;
use crate::util::{cargo, step};
use anyhow::{Result, bail};

pub(crate) fn main(args: &mut Args) -> Result<()> {
    let name = args.next_positional();
    args.finish()?;
    match name.as_deref() {
        None | Some("micro") => step("criterion benchmarks", cargo().args(["bench", "-p", "wskit-benches"])),
        Some(other) => bail!("unknown benchmark `{other}` (known: micro)"),
    }
}

