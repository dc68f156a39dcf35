//! The Styrmin server: the source of truth for what should run (SPEC §1, §4, §10).
//!
//! Its public surface is small: [`start`] a server with [`ServerOptions`] and
//! [`Settings`], [`bootstrap`] it for `styrmin up`, and the GraphQL schema's [`sdl`].
//! Everything else — store, services, GraphQL resolvers, UI, queue — is the crate's own;
//! other crates (and the tests) reach it through the API the server serves.

mod auth;
pub mod bootstrap;
mod charts;
mod crypto;
mod driver_versions;
mod error;
mod events;
mod graphql;
mod http;
mod ids;
mod listen;
mod metrics;
mod queue;
mod reconcile;
mod render;
mod reports;
mod resolve;
mod server;
mod services;
mod state;
mod store;
mod throttle;
mod ui;

pub use bootstrap::{Bootstrapped, BundledDriver, LocalSetup, bootstrap};
pub use graphql::sdl;
pub use render::RenderLimits;
pub use server::{RunningServer, ServerOptions, start};
pub use state::Settings;
