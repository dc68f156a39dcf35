//! Findings about a user's input, each tied to a file, a position and a field path, so that a
//! driver author can jump straight to the mistake. Errors and warnings travel together: a
//! lint run reports everything at once instead of stopping at the first problem.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::yaml::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file inside the driver, e.g. `driver.styrmin.yml`.
    pub file: String,
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// The field path, e.g. `spec.parameters[2].default`; empty for whole-file problems.
    pub field: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {severity}: ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Collects the diagnostics of one file.
#[derive(Debug)]
pub struct Diagnostics {
    file: String,
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn new(file: impl Into<String>) -> Self {
        Diagnostics {
            file: file.into(),
            items: Vec::new(),
        }
    }

    pub fn error(&mut self, pos: Option<Pos>, field: &str, message: impl Into<String>) {
        self.push(Severity::Error, pos, field, message.into(), None);
    }

    pub fn warning(&mut self, pos: Option<Pos>, field: &str, message: impl Into<String>) {
        self.push(Severity::Warning, pos, field, message.into(), None);
    }

    pub fn push(
        &mut self,
        severity: Severity,
        pos: Option<Pos>,
        field: &str,
        message: String,
        hint: Option<String>,
    ) {
        self.items.push(Diagnostic {
            severity,
            file: self.file.clone(),
            line: pos.map(|p| p.line),
            // Column 0 means the source knew only the line.
            column: pos.and_then(|p| (p.column > 0).then_some(p.column)),
            field: field.to_owned(),
            message,
            hint,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn into_vec(self) -> Vec<Diagnostic> {
        self.items
    }

    pub fn extend(&mut self, other: Vec<Diagnostic>) {
        self.items.extend(other);
    }
}

/// The known name closest to a misspelt one, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// Sorts errors before warnings, then by position, so the first line a user reads matters most.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.severity, &a.file, a.line, a.column).cmp(&(b.severity, &b.file, b.line, b.column))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_reads_like_a_compiler_message() {
        let mut d = Diagnostics::new("driver.styrmin.yml");
        d.push(
            Severity::Error,
            Some(Pos { line: 4, column: 3 }),
            "spec.paramters",
            "unknown field".into(),
            Some("did you mean `parameters`?".into()),
        );
        assert_eq!(
            d.into_vec()[0].to_string(),
            "driver.styrmin.yml:4:3: error: spec.paramters: unknown field (did you mean `parameters`?)"
        );
    }

    #[test]
    fn did_you_mean_finds_close_names_only() {
        let known = ["parameters", "services", "components"];
        assert_eq!(did_you_mean("paramters", known), Some("parameters"));
        assert_eq!(did_you_mean("servces", known), Some("services"));
        assert_eq!(did_you_mean("zzz", known), None);
    }
}
