//! A tiny flag parser: positionals, `--flag`, and `--key value` / `--key=value`.

use anyhow::{Context, Result, bail};

/// The remaining command-line arguments of an xtask invocation.
pub(crate) struct Args {
    rest: Vec<String>,
}

impl Args {
    pub(crate) fn from_env() -> Self {
        Self {
            rest: std::env::args().skip(1).collect(),
        }
    }

    /// Takes the first argument that does not start with `--`.
    pub(crate) fn next_positional(&mut self) -> Option<String> {
        let i = self.rest.iter().position(|a| !a.starts_with("--"))?;
        Some(self.rest.remove(i))
    }

    /// Takes `--name` if present.
    pub(crate) fn flag(&mut self, name: &str) -> bool {
        let long = format!("--{name}");
        match self.rest.iter().position(|a| *a == long) {
            Some(i) => {
                self.rest.remove(i);
                true
            }
            None => false,
        }
    }

    /// Takes `--name value` or `--name=value` if present.
    pub(crate) fn value(&mut self, name: &str) -> Result<Option<String>> {
        let long = format!("--{name}");
        let prefix = format!("--{name}=");
        if let Some(i) = self.rest.iter().position(|a| a.starts_with(&prefix)) {
            let a = self.rest.remove(i);
            return Ok(Some(a[prefix.len()..].to_owned()));
        }
        if let Some(i) = self.rest.iter().position(|a| *a == long) {
            self.rest.remove(i);
            if i >= self.rest.len() {
                bail!("{long} needs a value");
            }
            return Ok(Some(self.rest.remove(i)));
        }
        Ok(None)
    }

    /// Takes `--name N` parsed as a number, or returns `default`.
    pub(crate) fn number(&mut self, name: &str, default: u64) -> Result<u64> {
        match self.value(name)? {
            Some(v) => v
                .parse()
                .with_context(|| format!("--{name} expects a number, got `{v}`")),
            None => Ok(default),
        }
    }

    /// Fails if anything was not consumed.
    pub(crate) fn finish(&self) -> Result<()> {
        if !self.rest.is_empty() {
            bail!("unexpected arguments: {}", self.rest.join(" "));
        }
        Ok(())
    }
}
