//! One module per subcommand: each turns flags (and `--config wskit.toml` where offered) into a
//! library `Config` and calls the library.

pub(crate) mod bench;
pub(crate) mod client;
pub(crate) mod proxy;
pub(crate) mod serve;
pub(crate) mod stun;
pub(crate) mod stun_client;
pub(crate) mod turn;
