//! MQTT 3.1.1 and 5 client for wskit.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
pub mod packet;
mod reason;
pub mod topic;

pub use error::Error;
pub use reason::{Initiator, QoS, ReasonCode, Version};
