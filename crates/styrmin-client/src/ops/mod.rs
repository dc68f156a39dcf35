//! The API's operations, one module per noun. Each module declares its operations with
//! [`operations!`](crate::operation::operations) and lists their documents in `DOCUMENTS`.

pub mod agent;
pub mod audit;
pub mod backups;
pub mod clusters;
pub mod deployments;
pub mod drivers;
pub mod environments;
pub mod flow_runs;
pub mod locations;
pub mod session;
pub mod tokens;

use crate::operation::Document;

/// Every document the client sends, for the test that checks each against the SDL.
pub fn documents() -> Vec<&'static Document> {
    [
        agent::DOCUMENTS,
        audit::DOCUMENTS,
        backups::DOCUMENTS,
        clusters::DOCUMENTS,
        deployments::DOCUMENTS,
        drivers::DOCUMENTS,
        environments::DOCUMENTS,
        flow_runs::DOCUMENTS,
        locations::DOCUMENTS,
        session::DOCUMENTS,
        tokens::DOCUMENTS,
    ]
    .into_iter()
    .flatten()
    .collect()
}
