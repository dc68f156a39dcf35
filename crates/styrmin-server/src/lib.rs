//! The Styrmin server: the source of truth for what should run (SPEC §1, §4, §10).

pub mod admin;
pub mod auth;
pub mod charts;
pub mod crypto;
pub mod driver_versions;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod ids;
pub mod queue;
pub mod reconcile;
pub mod reports;
pub mod resolve;
pub mod server;
pub mod state;
pub mod store;
pub mod ui;

pub use graphql::sdl;
pub use server::{RunningServer, ServerOptions, start};
pub use state::Settings;
