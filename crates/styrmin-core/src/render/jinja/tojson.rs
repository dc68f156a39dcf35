//! Jinja2's `tojson`, byte for byte: `json.dumps(value, sort_keys=True)` with Python's
//! separators and ASCII-only escaping, then `<`, `>`, `&` and `'` escaped for HTML.

use std::fmt::Write as _;

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, ErrorKind, Value};

use super::args::CallArgs;
use super::{as_float, python_float, python_repr};

/// Jinja2's `tojson`: `json.dumps(value, sort_keys=True)`, then `<`, `>`, `&` and `'`
/// written as `\u003c`-style escapes so the output is safe inside HTML and YAML quotes.
pub fn tojson(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let args = CallArgs::new("tojson", args, kwargs);
    let indent = match args.get(0, "indent")? {
        Some(v) => indent_width(&v)?,
        None => None,
    };
    args.finish(1)?;
    let mut out = String::new();
    write_json(&mut out, value, indent, 0)?;
    // Jinja2 returns Markup: safe text that `escape` leaves alone.
    Ok(Value::from_safe_string(out))
}

fn indent_width(v: &Value) -> Result<Option<usize>, Error> {
    if v.is_none() {
        return Ok(None);
    }
    usize::try_from(v.clone()).map(Some).map_err(|_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "tojson: indent must be a whole number",
        )
    })
}

fn write_json(
    out: &mut String,
    value: &Value,
    indent: Option<usize>,
    depth: usize,
) -> Result<(), Error> {
    match value.kind() {
        ValueKind::Undefined => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson: the value is undefined (a missing key?); use `| default(...)` first",
            ));
        }
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => match as_float(value) {
            Some(f) if f.is_nan() => out.push_str("NaN"),
            Some(f) if f.is_infinite() => {
                out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Some(f) => out.push_str(&python_float(f)),
            None => {
                let _ = write!(out, "{value}");
            }
        },
        ValueKind::String => write_json_str(out, value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            write_container(out, '[', ']', items.len(), indent, depth, |out, i| {
                write_json(out, &items[i], indent, depth + 1)
            })?;
        }
        ValueKind::Map => {
            let mut entries: Vec<(String, Value)> = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                entries.push((json_key(&key)?, item));
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            write_container(out, '{', '}', entries.len(), indent, depth, |out, i| {
                write_json_str(out, &entries[i].0);
                out.push_str(": ");
                write_json(out, &entries[i].1, indent, depth + 1)
            })?;
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("tojson: cannot serialise a value of type {}", value.kind()),
            ));
        }
    }
    Ok(())
}

/// Python's json module turns non-string keys into strings.
fn json_key(key: &Value) -> Result<String, Error> {
    Ok(match key.kind() {
        ValueKind::String => key.as_str().unwrap_or_default().to_owned(),
        ValueKind::None => "null".into(),
        ValueKind::Bool => if key.is_true() { "true" } else { "false" }.into(),
        ValueKind::Number => python_repr(key),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "tojson: keys must be strings, numbers, booleans or none",
            ));
        }
    })
}

fn write_container(
    out: &mut String,
    open: char,
    close: char,
    len: usize,
    indent: Option<usize>,
    depth: usize,
    mut item: impl FnMut(&mut String, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if len == 0 {
        out.push(close);
        return Ok(());
    }
    for i in 0..len {
        match indent {
            Some(width) => {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                out.push_str(&" ".repeat(width * (depth + 1)));
            }
            None if i > 0 => out.push_str(", "),
            None => {}
        }
        item(out, i)?;
    }
    if let Some(width) = indent {
        out.push('\n');
        out.push_str(&" ".repeat(width * depth));
    }
    out.push(close);
    Ok(())
}

/// A JSON string as Python writes it with `ensure_ascii=True`, plus Jinja2's HTML escapes.
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\'' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
