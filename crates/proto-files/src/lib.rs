//! File transfer for wskit: the files protocol over WebSocket (docs/files-protocol.md) with
//! acknowledgements, receiver-driven credit, resume by file id and offset and an end-to-end
//! SHA-256, and tus 1.0 uploads over HTTP into the same store.
//!
//! ```text
//!   sans-IO core (no tokio, time is an argument)
//!     wire      one binary message per protocol message: 18-byte header + body; borrowing decoder
//!     name      bare file names only (no traversal), " (n)" numbering
//!     sender    offer -> accept/resume -> data (window | credit | rewind) -> complete(SHA-256)
//!     receiver  limits before anything is written, in-order chunks, ack / request / re-request,
//!               timeout, SHA-256 check
//!     tus       tus 1.0 requests -> responses over a store (creation, checksum, termination, ...)
//! ```
//!
//! See the crate's README for an example of both ends, the limits and the tests.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Modules are floors: each uses only the floors below it.
//   0 leaf types   error, config, name, wire
//   1 state        sender, receiver; meta (partial files' metadata: SQLite or memory);
//                  store (the save directory, std::fs, over meta)
//   2 entry points fuzzing
//   3 glue         engine (per-connection routing, the sending task, events; tokio)
//   4 doors        tus (HTTP server side), tus_client, server (ws-server), client (ws-client)
#[cfg(feature = "runtime")]
mod client;
mod config;
#[cfg(feature = "runtime")]
mod engine;
mod error;
pub mod fuzzing;
mod meta;
mod name;
mod receiver;
mod sender;
#[cfg(feature = "runtime")]
mod server;
mod store;
#[cfg(feature = "runtime")]
mod tus;
#[cfg(feature = "runtime")]
mod tus_client;
pub mod wire;

#[cfg(feature = "runtime")]
pub use client::FilesClient;
#[cfg(feature = "runtime")]
pub use engine::{ChannelHooks, EventKind, FileEvent, Hooks, NoHooks, SendOptions, SendReport};
#[cfg(feature = "sqlite")]
pub use meta::SqliteMeta;
pub use meta::{Area, MemoryMeta, Meta, MetaStore};
#[cfg(feature = "runtime")]
pub use server::{Files, FilesHandler};
pub use store::Store;
#[cfg(feature = "runtime")]
pub use tus_client::{TusClient, TusReport};

pub use config::Config;
pub use error::{Code, Error};
pub use name::{MAX_NAME, check_name, numbered};
pub use receiver::{DataAction, Partial, PrefixHasher, Receiver, ReceiverAction, refusal};
pub use sender::{OfferInfo, Sender, SenderEvent};
pub use wire::{FileId, QoS, SUBPROTOCOL};

/// The browser client of the files protocol (`WskitFiles`, assets/wskit-files.js): served at
/// `/wskit-files.js` by [`Files::on_http`].
pub const WSKIT_FILES_JS: &str = include_str!("../assets/wskit-files.js");

/// The README's example, compiled as a doctest (defined, not run).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
