//! `--log-frames FILE [--log-payload BYTES]` of `serve` and `client`: the frame and message log
//! of ws-io (the seed's `LogFile`, tracing target [`ws_io::frames::TARGET`]) written to a file
//! by a layer that takes that target only.

use std::{fs::File, path::PathBuf, sync::Mutex};

use anyhow::Context as _;
use tracing_subscriber::{Layer, filter::Targets, registry::LookupSpan};

super::cmd::config::layered! {
    /// The frame log flags (command line only: the subscriber is set up before wskit.toml is
    /// read, so the `[serve]` and `[client]` tables have no keys for them).
    #[derive(Clone, Debug, Default, clap::Args)]
    pub(crate) struct FrameLogArgs {
        /// Write one line per WebSocket frame sent and per message or control frame received
        /// (connection id, direction, opcode, FIN, payload length) to FILE (appended).
        /// Default: no frame log.
        #[arg(long, value_name = "FILE")]
        pub(crate) log_frames: Option<PathBuf>,
        /// With --log-frames: also log the payloads, unmasked, cut to BYTES bytes each (text as
        /// an escaped string, binary as hex). Default: lengths only.
        #[arg(long, value_name = "BYTES", requires = "log_frames")]
        pub(crate) log_payload: Option<usize>,
    }
}

/// The layer writing the frame log to `--log-frames FILE`, if given; sets ws-io's payload limit
/// from `--log-payload`.
///
/// # Errors
/// FILE cannot be opened for appending.
pub(crate) fn layer<S>(args: Option<&FrameLogArgs>) -> anyhow::Result<Option<impl Layer<S>>>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let Some((path, payload)) = args.and_then(|a| Some((a.log_frames.as_ref()?, a.log_payload)))
    else {
        return Ok(None);
    };
    let file = File::options()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("--log-frames {}: cannot open for appending", path.display()))?;
    ws_io::frames::set_payload_limit(payload);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .with_target(false)
        .with_filter(Targets::new().with_target(ws_io::frames::TARGET, tracing::Level::TRACE));
    Ok(Some(layer))
}
