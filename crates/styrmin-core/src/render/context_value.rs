//! The Context in the template engine's value form. Context maps are small (a handful of
//! keys), so they become insertion-ordered vectors searched linearly: building the engine's
//! own hash maps for every render cost as much as rendering the template.

use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectRepr};

/// A JSON object as a template sees it: keys in the JSON's order.
#[derive(Debug)]
struct SmallMap(Vec<(Value, Value)>);

impl Object for SmallMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let wanted = key.as_str()?;
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == Some(wanted))
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.iter().map(|(k, _)| k.clone()).collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }
}

/// What a template reads of a Context value: all of it, or some keys of a mapping (each
/// with what it reads of that key's value). Built from the template's attribute paths
/// (`instance.config.ingress_class`); a name used any other way (printed, iterated, passed
/// to a filter or macro, subscripted, or a method called on it) reads all of its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Reads {
    All,
    Keys(Vec<(String, Reads)>),
}

/// Attributes of a Python dict that are methods, never keys (`d.items` is the method).
const DICT_METHODS: &[&str] = &[
    "items",
    "keys",
    "values",
    "get",
    "pop",
    "popitem",
    "setdefault",
    "update",
    "clear",
    "copy",
    "fromkeys",
];

impl Reads {
    /// The reads of a whole Context from the template's undeclared variable paths.
    pub fn of_paths(paths: impl IntoIterator<Item = String>) -> Reads {
        let mut root = Reads::Keys(Vec::new());
        for path in paths {
            let parts: Vec<&str> = path.split('.').collect();
            // The Context itself is a mapping read by its top-level names only.
            if let Reads::Keys(keys) = &mut root {
                let child = match keys.iter().position(|(k, _)| k == parts[0]) {
                    Some(at) => &mut keys[at].1,
                    None => {
                        keys.push((parts[0].to_owned(), Reads::Keys(Vec::new())));
                        &mut keys.last_mut().expect("just pushed").1
                    }
                };
                child.add(&parts[1..]);
            }
        }
        root
    }

    fn add(&mut self, rest: &[&str]) {
        let Reads::Keys(keys) = self else {
            return;
        };
        match rest.first() {
            None => *self = Reads::All,
            Some(name) if DICT_METHODS.contains(name) => *self = Reads::All,
            Some(name) => {
                let child = match keys.iter().position(|(k, _)| k == name) {
                    Some(at) => &mut keys[at].1,
                    None => {
                        keys.push(((*name).to_owned(), Reads::Keys(Vec::new())));
                        &mut keys.last_mut().expect("just pushed").1
                    }
                };
                child.add(&rest[1..]);
            }
        }
    }

    /// The part of `value` these reads need, in engine form; a mapping keeps its order.
    pub fn convert(&self, value: &serde_json::Value) -> Value {
        match (self, value) {
            (Reads::Keys(keys), serde_json::Value::Object(map)) => Value::from_object(SmallMap(
                map.iter()
                    .filter_map(|(k, v)| {
                        keys.iter()
                            .find(|(name, _)| name == k)
                            .map(|(_, reads)| (Value::from(k.as_str()), reads.convert(v)))
                    })
                    .collect(),
            )),
            _ => from_json(value),
        }
    }
}

static EMPTY_LIST: std::sync::LazyLock<Value> =
    std::sync::LazyLock::new(|| Value::from(Vec::<Value>::new()));

pub fn from_json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        // Values are immutable: every empty list can be the same one (no allocation).
        serde_json::Value::Array(items) if items.is_empty() => EMPTY_LIST.clone(),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(from_json).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => from_entries(map.iter()),
    }
}

pub fn from_entries<'a>(
    entries: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
) -> Value {
    Value::from_object(SmallMap(
        entries
            .map(|(k, v)| (Value::from(k.as_str()), from_json(v)))
            .collect(),
    ))
}

/// JSON text to engine values as Python's `json.loads` reads it: maps in the text's order,
/// floats rounded exactly (serde_json's default float parsing may be one unit off in the
/// last place), integers as integers.
pub fn from_json_text(text: &str) -> Result<Value, String> {
    let mut parser = JsonText {
        chars: text.char_indices().peekable(),
        text,
    };
    let value = parser.value()?;
    parser.skip_space();
    match parser.chars.next() {
        None => Ok(value),
        Some((at, _)) => Err(format!("unexpected text after the JSON value at byte {at}")),
    }
}

struct JsonText<'a> {
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
    text: &'a str,
}

impl JsonText<'_> {
    fn skip_space(&mut self) {
        while self
            .chars
            .peek()
            .is_some_and(|(_, c)| matches!(c, ' ' | '\t' | '\n' | '\r'))
        {
            self.chars.next();
        }
    }

    fn expect(&mut self, wanted: char) -> Result<(), String> {
        self.skip_space();
        match self.chars.next() {
            Some((_, c)) if c == wanted => Ok(()),
            Some((at, c)) => Err(format!("expected `{wanted}` at byte {at}, found `{c}`")),
            None => Err(format!("expected `{wanted}`, found the end")),
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip_space();
        let Some(&(at, c)) = self.chars.peek() else {
            return Err("expected a JSON value, found the end".into());
        };
        match c {
            '{' => {
                self.chars.next();
                let mut entries = Vec::new();
                self.skip_space();
                if self.chars.peek().is_some_and(|(_, c)| *c == '}') {
                    self.chars.next();
                } else {
                    loop {
                        self.skip_space();
                        let key = self.string()?;
                        self.expect(':')?;
                        let value = self.value()?;
                        // A key written twice keeps its first place and its last value.
                        match entries
                            .iter_mut()
                            .find(|(k, _): &&mut (String, Value)| *k == key)
                        {
                            Some(entry) => entry.1 = value,
                            None => entries.push((key, value)),
                        }
                        self.skip_space();
                        match self.chars.next() {
                            Some((_, ',')) => continue,
                            Some((_, '}')) => break,
                            _ => {
                                return Err(format!(
                                    "expected `,` or `}}` in the object at byte {at}"
                                ));
                            }
                        }
                    }
                }
                Ok(Value::from_object(SmallMap(
                    entries
                        .into_iter()
                        .map(|(k, v)| (Value::from(k), v))
                        .collect(),
                )))
            }
            '[' => {
                self.chars.next();
                let mut items = Vec::new();
                self.skip_space();
                if self.chars.peek().is_some_and(|(_, c)| *c == ']') {
                    self.chars.next();
                } else {
                    loop {
                        items.push(self.value()?);
                        self.skip_space();
                        match self.chars.next() {
                            Some((_, ',')) => continue,
                            Some((_, ']')) => break,
                            _ => {
                                return Err(format!(
                                    "expected `,` or `]` in the list at byte {at}"
                                ));
                            }
                        }
                    }
                }
                Ok(Value::from(items))
            }
            '"' => self.string().map(Value::from),
            _ => {
                let start = at;
                let mut end = start;
                while let Some(&(i, c)) = self.chars.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.') {
                        end = i + c.len_utf8();
                        self.chars.next();
                    } else {
                        break;
                    }
                }
                let word = &self.text[start..end];
                match word {
                    "true" => Ok(Value::from(true)),
                    "false" => Ok(Value::from(false)),
                    "null" => Ok(Value::from(())),
                    "NaN" => Ok(Value::from(f64::NAN)),
                    "Infinity" => Ok(Value::from(f64::INFINITY)),
                    "-Infinity" => Ok(Value::from(f64::NEG_INFINITY)),
                    _ if word.contains(['.', 'e', 'E']) => word
                        .parse::<f64>()
                        .map(Value::from)
                        .map_err(|_| format!("invalid number `{word}` at byte {start}")),
                    _ => word
                        .parse::<i64>()
                        .map(Value::from)
                        .or_else(|_| word.parse::<u64>().map(Value::from))
                        .or_else(|_| word.parse::<i128>().map(Value::from))
                        .map_err(|_| format!("invalid value `{word}` at byte {start}")),
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        match self.chars.next() {
            Some((_, '"')) => {}
            Some((at, c)) => return Err(format!("expected a string at byte {at}, found `{c}`")),
            None => return Err("expected a string, found the end".into()),
        }
        let mut out = String::new();
        let mut pending_high: Option<u32> = None;
        loop {
            let Some((at, c)) = self.chars.next() else {
                return Err("unterminated string".into());
            };
            if c != '\\' {
                if let Some(high) = pending_high.take() {
                    out.push(char::from_u32(high).unwrap_or('\u{fffd}'));
                }
                if c == '"' {
                    return Ok(out);
                }
                out.push(c);
                continue;
            }
            let escaped = self.chars.next().map(|(_, c)| c);
            let simple = match escaped {
                Some('"') => Some('"'),
                Some('\\') => Some('\\'),
                Some('/') => Some('/'),
                Some('b') => Some('\u{8}'),
                Some('f') => Some('\u{c}'),
                Some('n') => Some('\n'),
                Some('r') => Some('\r'),
                Some('t') => Some('\t'),
                Some('u') => None,
                _ => return Err(format!("invalid escape at byte {at}")),
            };
            if let Some(c) = simple {
                if let Some(high) = pending_high.take() {
                    out.push(char::from_u32(high).unwrap_or('\u{fffd}'));
                }
                out.push(c);
                continue;
            }
            let hex: String = (0..4)
                .filter_map(|_| self.chars.next().map(|(_, c)| c))
                .collect();
            let unit = u32::from_str_radix(&hex, 16)
                .map_err(|_| format!("invalid \\u escape at byte {at}"))?;
            match (pending_high.take(), unit) {
                (Some(high), 0xDC00..=0xDFFF) => {
                    let code = 0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00);
                    out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                }
                (previous, 0xD800..=0xDBFF) => {
                    if previous.is_some() {
                        out.push('\u{fffd}');
                    }
                    pending_high = Some(unit);
                }
                (previous, unit) => {
                    if previous.is_some() {
                        out.push('\u{fffd}');
                    }
                    out.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Only what a template reads is converted: an attribute path keeps its keys, any other
    /// use of a name (or a dict method called on it) keeps all of its value.
    #[test]
    fn reads_keep_what_the_paths_name() {
        let reads = Reads::of_paths(
            [
                "instance.config.ingress_class",
                "instance.release_name",
                "services",
                "app.version",
                "app.version.upper",
                "parameters.items",
                "parameters.replicas",
            ]
            .map(String::from),
        );
        let context = json!({
            "instance": {"id": "x", "config": {"ingress_class": "a", "other": 1}, "release_name": "r"},
            "services": {"web": {"port": 80}},
            "app": {"version": "1", "chart": {"location": "."}},
            "parameters": {"replicas": 2, "log_level": "info"},
            "cluster": {"name": "local"}
        });
        let value = reads.convert(&context);
        let printed = |path: &[&str]| {
            let mut v = value.clone();
            for key in path {
                v = v.get_attr(key).unwrap();
            }
            v.to_string()
        };
        assert_eq!(printed(&["instance", "config", "ingress_class"]), "a");
        assert!(
            value
                .get_attr("instance")
                .unwrap()
                .get_attr("id")
                .unwrap()
                .is_undefined()
        );
        assert_eq!(
            value
                .get_attr("instance")
                .unwrap()
                .get_attr("config")
                .unwrap()
                .len(),
            Some(1)
        );
        assert_eq!(printed(&["services", "web", "port"]), "80");
        assert_eq!(value.get_attr("app").unwrap().len(), Some(1));
        assert_eq!(value.get_attr("parameters").unwrap().len(), Some(2));
        assert!(value.get_attr("cluster").unwrap().is_undefined());
    }
}
