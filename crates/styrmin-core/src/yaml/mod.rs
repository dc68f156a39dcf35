//! YAML reading with positions: the parser-facing tree (`node`) and the typed field readers
//! (`read`) that turn it into model structs while reporting every problem.

mod node;
pub mod read;
pub mod yaml11;

pub use node::{Document, Node, NodeKind, Pos, Scalar, SyntaxError, parse};
