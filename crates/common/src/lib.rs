//! What every Nubo service shares: the public [`Error`] and its fault dialects, the [`Caller`]
//! behind a request, the configuration, the database handle and migration runner, timestamps,
//! ids, microversion negotiation, and the HTTP plumbing (request ids, metrics, JSON bodies).

pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod http;
pub mod ids;
pub mod microversion;
pub mod testing;
pub mod time;

pub use config::Config;
pub use context::{Caller, Scope, SharedValidator, TokenValidator};
pub use db::{Db, Migration};
pub use error::{Error, FaultStyle, Result};
