//! Styrmin's pure core: the Application Driver format and its validation, application
//! version specifiers, the Context, and values rendering. No I/O and no async here: every
//! function takes values and returns values, so all of it is tested without a cluster.

pub mod backup;
pub mod backup_plan;
pub mod canonical;
pub mod children;
pub mod context;
pub mod crd;
pub mod cron;
pub mod diagnostics;
pub mod driver;
pub mod field_error;
pub mod hooks;
pub mod naming;
pub mod parameters;
pub mod planner;
pub mod protocol;
pub mod render;
mod spelled;
pub mod status;
pub mod version;
pub mod workloads;
pub mod yaml;

pub use context::GlobalContext;
pub use diagnostics::{Diagnostic, Severity};
pub use driver::{ApplicationDriver, Driver, DriverFiles, load};
pub use field_error::{FieldError, FieldErrors};
pub use render::{RenderError, RenderedValues, ValuesTemplate, render_values};
pub use version::{Version, VersionSpec};
