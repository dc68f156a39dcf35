//! What Styrmin's test suites share, written once: a server on SQLite or on a throwaway
//! PostgreSQL database, an admin client and the catalogue the tests build on it, a fake
//! agent, the example driver, and waiting on conditions with deadlines. With the `cluster`
//! feature: the local cluster (styrmin-localkube, with its Flux and Velero stand-ins) with a
//! server, the `local` cluster, a `dev` environment and the example driver, and agents in
//! process or as `styrmin agent` processes. With `browser`: a WebDriver client.
//!
//! A dev-dependency only (`publish = false`): it panics with a message on anything
//! unexpected, as a test should.

mod api;
#[cfg(feature = "cluster")]
pub mod cluster;
mod db;
pub mod exposition;
mod files;
mod server;
mod wait;
#[cfg(feature = "browser")]
pub mod webdriver;

pub use api::{
    DEPLOYMENT, RUN, claim, claim_one, complete, create_example, deployment, example_deployment,
    fail, fails, fails_with, finish, log, ok,
};
pub use db::{Kind, TestDb, database};
pub use files::{
    commit_all, copy_dir, example_driver, example_driver_copy, git, helm, repo_root,
    secret_driver_copy,
};
pub use server::{ADMIN_TOKEN, Harness, fast_settings, server_on};
pub use wait::{eventually, wait_until};

/// A TCP port nothing listens on now, for a process the test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// Generates one `#[tokio::test]` per database kind for each scenario `async fn(Kind)`,
/// in modules `sqlite` and `postgres`.
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::Kind::Sqlite).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::Kind::Postgres).await;
                }
            )+
        }
    };
}
