//! The API's operations, one module per noun. Each module declares its operations with
//! [`operations!`](crate::operation::operations) and lists their documents in `DOCUMENTS`.

pub mod agent;
pub mod audit;
pub mod clusters;
pub mod drivers;
pub mod environments;
pub mod locations;
pub mod session;
pub mod tokens;

use crate::operation::Document;

/// Every document the client sends, for the test that checks each against the SDL.
pub fn documents() -> Vec<&'static Document> {
    [
        agent::DOCUMENTS,
        audit::DOCUMENTS,
        clusters::DOCUMENTS,
        drivers::DOCUMENTS,
        environments::DOCUMENTS,
        locations::DOCUMENTS,
        session::DOCUMENTS,
        tokens::DOCUMENTS,
    ]
    .into_iter()
    .flatten()
    .collect()
}
