//! The OAuth2 authorization server: [`server`] decides (no IO, `now` and randomness passed
//! in), [`store`] persists (SQLite), [`http`] serves it on a ws-server port.

pub mod http;
pub mod password;
pub mod server;
pub mod store;

pub use http::{OAuth2, OAuth2Routes};
pub use server::{AuthServer, Issued, OAuth2Hooks, OsRandom, Random, Users};
pub use store::{App, PendingSignIn, SqliteStore, Store, TokenKind, TokenRecord};
