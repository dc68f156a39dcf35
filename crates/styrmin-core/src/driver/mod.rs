//! The Application Driver: its files, the typed spec, and loading = parse + validate.

mod model;
mod parse;
pub mod python;
mod validate;

use std::collections::BTreeSet;

pub use model::*;
pub use validate::ACTIONS_FILE;

use crate::diagnostics::{self, Diagnostic, Diagnostics};
use crate::render::{RenderError, VALUES_FILE, ValuesTemplate};
use crate::yaml;

pub const SPEC_FILE: &str = "driver.styrmin.yml";

/// The contents of a driver directory (or git tree), read by the caller.
#[derive(Debug, Clone, Default)]
pub struct DriverFiles {
    pub spec: String,
    pub values_template: Option<String>,
    pub actions: Option<String>,
    /// Every file path in the driver, `/`-separated and relative (charts included).
    pub files: BTreeSet<String>,
}

/// A driver that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Driver {
    pub spec: ApplicationDriver,
    pub values_template: Option<String>,
    pub actions: Option<String>,
}

/// The outcome of loading: the driver when nothing is wrong, and every finding either way.
#[derive(Debug)]
pub struct Loaded {
    pub driver: Option<Driver>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == diagnostics::Severity::Error)
    }
}

/// Parses and validates a driver. Nothing is executed: actions.py is only scanned.
pub fn load(files: &DriverFiles) -> Loaded {
    let mut d = Diagnostics::new(SPEC_FILE);
    let mut positions = parse::Positions::default();
    let spec = match yaml::parse(&files.spec) {
        Err(e) => {
            d.error(Some(e.pos), "", format!("invalid YAML: {}", e.message));
            None
        }
        Ok(doc) => match &doc.root {
            None => {
                d.error(None, "", "the file is empty");
                None
            }
            Some(root) => parse::parse_spec(root, &mut d, &mut positions),
        },
    };
    if let Some(spec) = &spec {
        let bundle = validate::Bundle {
            actions: files.actions.as_deref(),
            files: &files.files,
        };
        validate::validate(spec, &bundle, &mut d, &positions);
    }
    let mut all = d.into_vec();
    if let Some(source) = &files.values_template {
        all.extend(check_template(source, spec.as_ref()));
    }
    diagnostics::sort(&mut all);
    let ok = !all
        .iter()
        .any(|x| x.severity == diagnostics::Severity::Error);
    Loaded {
        driver: match (ok, spec) {
            (true, Some(spec)) => Some(Driver {
                spec,
                values_template: files.values_template.clone(),
                actions: files.actions.clone(),
            }),
            _ => None,
        },
        diagnostics: all,
    }
}

/// The template must compile; reads of parameters, components and services the driver does
/// not declare are flagged, since they would silently render as empty.
fn check_template(source: &str, spec: Option<&ApplicationDriver>) -> Vec<Diagnostic> {
    let mut d = Diagnostics::new(VALUES_FILE);
    let template = match ValuesTemplate::compile(source) {
        Ok(t) => t,
        Err(RenderError::Syntax { line, message }) => {
            let pos = yaml::Pos {
                line: line as u32,
                column: 0,
            };
            d.push(diagnostics::Severity::Error, Some(pos), "", message, None);
            return d.into_vec();
        }
        Err(other) => {
            d.error(None, "", other.to_string());
            return d.into_vec();
        }
    };
    let Some(spec) = spec else {
        return d.into_vec();
    };
    const TOP: &[&str] = &[
        "cluster",
        "environment",
        "deployment",
        "instance",
        "app",
        "components",
        "parameters",
        "services",
    ];
    for path in template.referenced_paths() {
        let mut parts = path.split('.');
        let top = parts.next().unwrap_or_default();
        let second = parts.next();
        let (known, what): (Vec<&str>, &str) = match top {
            "parameters" => (
                spec.spec
                    .parameters
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect(),
                "parameter",
            ),
            "services" => (
                spec.spec.services.iter().map(|s| s.name.as_str()).collect(),
                "service",
            ),
            "components" => (
                spec.spec.components.keys().map(String::as_str).collect(),
                "component",
            ),
            t if TOP.contains(&t) => continue,
            t => {
                let hint = diagnostics::did_you_mean(t, TOP.iter().copied())
                    .map(|k| format!("did you mean `{k}`?"));
                d.push(
                    diagnostics::Severity::Warning,
                    line_of(source, &[t]),
                    t,
                    format!("`{t}` is not part of the Context and renders as empty"),
                    hint,
                );
                continue;
            }
        };
        if let Some(name) = second
            && !known.contains(&name)
        {
            let hint = diagnostics::did_you_mean(name, known.iter().copied())
                .map(|k| format!("did you mean `{k}`?"));
            let spellings = [
                format!("{top}.{name}"),
                format!("{top}['{name}']"),
                format!("{top}[\"{name}\"]"),
            ];
            let spellings: Vec<&str> = spellings.iter().map(String::as_str).collect();
            d.push(
                diagnostics::Severity::Warning,
                line_of(source, &spellings),
                &format!("{top}.{name}"),
                format!("the driver declares no {what} `{name}`; it renders as empty"),
                hint,
            );
        }
    }
    d.into_vec()
}

/// The first line where the template spells a reference one of these ways, as a whole word.
fn line_of(source: &str, spellings: &[&str]) -> Option<yaml::Pos> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    source.lines().enumerate().find_map(|(i, line)| {
        spellings.iter().find_map(|needle| {
            line.match_indices(needle).find_map(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + needle.len()..].chars().next();
                let whole =
                    !before.is_some_and(|c| is_word(c) || c == '.') && !after.is_some_and(is_word);
                whole.then_some(yaml::Pos {
                    line: i as u32 + 1,
                    column: at as u32 + 1,
                })
            })
        })
    })
}
