//! Typed readers over positioned YAML nodes. Each reader reports a problem to `Diagnostics`
//! with the node's position and field path and returns `None`, so conversion carries on and
//! every mistake in a file is found in one pass.

use std::collections::BTreeMap;

use super::{Node, NodeKind, Scalar};
use crate::diagnostics::{Diagnostics, Severity, did_you_mean};

/// How unknown keys in a mapping are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unknown {
    /// Forward compatibility: newer drivers may carry fields this version does not know.
    Warn,
    /// Where a typo would silently drop meaning (the top level of `spec`).
    Reject,
}

/// The entries of one mapping. Keys that the conversion asks for are known; whatever else
/// the author wrote is reported by `finish`.
pub struct Fields<'a> {
    pub path: String,
    pub node: &'a Node,
    entries: &'a [(Node, Node)],
    asked: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub fn get(&mut self, key: &'static str) -> Option<&'a Node> {
        self.asked.push(key);
        self.entries
            .iter()
            .find(|(k, _)| k.scalar_text() == Some(key))
            .map(|(_, v)| v)
    }

    /// A field that must be present and not null.
    pub fn require(&mut self, key: &'static str, d: &mut Diagnostics) -> Option<&'a Node> {
        match self.get(key) {
            Some(node) if !node.is_null() => Some(node),
            Some(node) => {
                d.error(Some(node.pos), &self.child(key), "must not be empty");
                None
            }
            None => {
                d.error(
                    Some(self.node.pos),
                    &self.child(key),
                    format!("missing required field `{key}`"),
                );
                None
            }
        }
    }

    pub fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }

    pub fn finish(self, d: &mut Diagnostics, unknown: Unknown) {
        for (key, _) in self.entries {
            let Some(name) = key.scalar_text() else {
                d.error(
                    Some(key.pos),
                    &self.path,
                    "mapping keys must be plain strings",
                );
                continue;
            };
            if self.asked.contains(&name) {
                continue;
            }
            let hint = did_you_mean(name, self.asked.iter().copied())
                .map(|known| format!("did you mean `{known}`?"));
            let (severity, message) = match unknown {
                Unknown::Reject => (Severity::Error, format!("unknown field `{name}`")),
                Unknown::Warn => (
                    Severity::Warning,
                    format!("unknown field `{name}` is ignored"),
                ),
            };
            d.push(severity, Some(key.pos), &self.child(name), message, hint);
        }
    }
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

pub fn map<'a>(node: &'a Node, path: &str, d: &mut Diagnostics) -> Option<Fields<'a>> {
    match &node.kind {
        NodeKind::Map(entries) => Some(Fields {
            path: path.to_owned(),
            node,
            entries,
            asked: Vec::new(),
        }),
        _ => {
            d.error(
                Some(node.pos),
                path,
                format!("expected a mapping, found {}", node.describe()),
            );
            None
        }
    }
}

/// A list; a missing or null field reads as an empty list.
pub fn seq<'a>(node: Option<&'a Node>, path: &str, d: &mut Diagnostics) -> &'a [Node] {
    match node.map(|n| (n, &n.kind)) {
        None => &[],
        Some((n, _)) if n.is_null() => &[],
        Some((_, NodeKind::Seq(items))) => items,
        Some((n, _)) => {
            d.error(
                Some(n.pos),
                path,
                format!("expected a list, found {}", n.describe()),
            );
            &[]
        }
    }
}

/// Any scalar except null, read as the text the author wrote (`version: 1` is "1").
pub fn string(node: &Node, path: &str, d: &mut Diagnostics) -> Option<String> {
    match node.scalar() {
        Some(Scalar::Null) => {
            d.error(
                Some(node.pos),
                path,
                "expected a string, found nothing (null)",
            );
            None
        }
        Some(_) => node.scalar_text().map(str::to_owned),
        None => {
            d.error(
                Some(node.pos),
                path,
                format!("expected a string, found {}", node.describe()),
            );
            None
        }
    }
}

pub fn opt_string(node: Option<&Node>, path: &str, d: &mut Diagnostics) -> Option<String> {
    node.filter(|n| !n.is_null())
        .and_then(|n| string(n, path, d))
}

pub fn boolean(node: &Node, path: &str, d: &mut Diagnostics) -> Option<bool> {
    match node.scalar() {
        Some(Scalar::Bool(b)) => Some(b),
        _ => {
            d.error(
                Some(node.pos),
                path,
                format!("expected true or false, found {}", node.describe()),
            );
            None
        }
    }
}

pub fn integer(node: &Node, path: &str, d: &mut Diagnostics) -> Option<i64> {
    match node.scalar() {
        Some(Scalar::Int(i)) => Some(i),
        _ => {
            d.error(
                Some(node.pos),
                path,
                format!("expected an integer, found {}", node.describe()),
            );
            None
        }
    }
}

pub fn string_list(node: Option<&Node>, path: &str, d: &mut Diagnostics) -> Vec<String> {
    seq(node, path, d)
        .iter()
        .enumerate()
        .filter_map(|(i, item)| string(item, &index(path, i), d))
        .collect()
}

/// A mapping of string keys to string values (label selectors).
pub fn string_map(node: &Node, path: &str, d: &mut Diagnostics) -> BTreeMap<String, String> {
    let NodeKind::Map(entries) = &node.kind else {
        d.error(
            Some(node.pos),
            path,
            format!("expected a mapping, found {}", node.describe()),
        );
        return BTreeMap::new();
    };
    entries
        .iter()
        .filter_map(|(k, v)| {
            let key = k.scalar_text()?.to_owned();
            let value = string(v, &join(path, &key), d)?;
            Some((key, value))
        })
        .collect()
}

/// Reads an enumeration from its spelling, listing the allowed spellings on error.
pub fn one_of<T: Copy>(
    node: &Node,
    path: &str,
    choices: &[(&str, T)],
    d: &mut Diagnostics,
) -> Option<T> {
    let text = string(node, path, d)?;
    if let Some((_, value)) = choices.iter().find(|(name, _)| *name == text) {
        return Some(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    let hint = did_you_mean(&text, names.iter().copied()).map(|n| format!("did you mean `{n}`?"));
    d.push(
        Severity::Error,
        Some(node.pos),
        path,
        format!("`{text}` is not one of: {}", names.join(", ")),
        hint,
    );
    None
}
