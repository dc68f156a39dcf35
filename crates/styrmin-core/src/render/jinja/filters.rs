//! Jinja2 filters, tests and methods whose minijinja versions differ from Python's in
//! arguments or output; each follows the Jinja2 3.x implementation.

use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest, ValueKind};
use minijinja::{Environment, Error, ErrorKind, Value};

use super::args::CallArgs;
use super::{as_float, python_str};

pub fn register(env: &mut Environment<'static>) {
    env.add_filter("join", join);
    env.add_filter("default", default);
    env.add_filter("d", default);
    env.add_filter("dictsort", dictsort);
    env.add_filter("items", |value: &Value| -> Result<Value, Error> {
        items(value)
    });
    env.add_filter("indent", indent);
    env.add_filter("int", int);
    env.add_filter("float", float);
    env.add_filter("escape", escape);
    env.add_filter("e", escape);
    env.add_filter("attr", attr);
    // Jinja2's `reverse` of an undefined value is an empty iterator.
    env.add_filter("reverse", |value: &Value| {
        if value.is_undefined() {
            return Ok(Value::from(Vec::<Value>::new()));
        }
        minijinja::filters::reverse(value)
    });
    env.add_filter("urlencode", urlencode);
    env.add_test("sequence", is_sequence);
    env.add_test("callable", is_callable);
    env.add_test("lower", |value: &Value| python_case_test(value, false));
    env.add_test("upper", |value: &Value| python_case_test(value, true));
    env.add_test("iterable", is_iterable);
    env.set_unknown_method_callback(|state, value, method, args| {
        super::methods::call(state, value, method, args)
    });
}

/// A Python tuple: iterates and indexes like a list, prints as `('a', 1)`.
#[derive(Debug)]
pub struct PyTuple(pub Vec<Value>);

impl Object for PyTuple {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.get(key.as_usize()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.0.len())
    }
}

fn pair(key: Value, value: Value) -> Value {
    Value::from_object(PyTuple(vec![key, value]))
}

/// `dict.items()` and `|items`: `(key, value)` tuples in the mapping's order.
fn items(value: &Value) -> Result<Value, Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(Value::from(Vec::<Value>::new()));
    }
    if value.kind() != ValueKind::Map {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "items: the value is not a mapping",
        ));
    }
    let pairs: Result<Vec<Value>, Error> = value
        .try_iter()?
        .map(|k| Ok(pair(k.clone(), value.get_item(&k)?)))
        .collect();
    Ok(Value::from(pairs?))
}

/// Jinja2's lenient Undefined prints as nothing but fails as soon as a filter converts it
/// (`int(Undefined)`, iterating its items, splitting its lines).
pub(crate) fn reject_undefined(value: &Value, filter: &str) -> Result<(), Error> {
    if value.is_undefined() {
        return Err(Error::new(
            ErrorKind::UndefinedError,
            format!(
                "{filter}: the value is undefined (a missing key?); use `| default(...)` first"
            ),
        ));
    }
    Ok(())
}

/// `join(d='', attribute=None)`: items become text the way Python's `str()` makes them.
fn join(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let args = CallArgs::new("join", args, kwargs);
    let separator = args
        .get(0, "d")?
        .map(|v| python_str(&v))
        .unwrap_or_default();
    let attribute = args.get(1, "attribute")?;
    args.finish(2)?;
    if value.is_undefined() || value.is_none() {
        return Ok(String::new());
    }
    let mut out = String::new();
    for (i, item) in value.try_iter()?.enumerate() {
        if i > 0 {
            out.push_str(&separator);
        }
        let item = match &attribute {
            Some(attr) => python_str(attr)
                .split('.')
                .try_fold(item, |v, part| v.get_attr(part))?,
            None => item,
        };
        out.push_str(&python_str(&item));
    }
    Ok(out)
}

/// `default(default_value='', boolean=False)`: with `boolean`, falsy values are replaced too.
/// The fallback may itself be undefined (`default(other_missing)`), so it is read raw.
fn default(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let args = CallArgs::new("default", args, kwargs);
    let fallback = args
        .get(0, "default_value")?
        .unwrap_or_else(|| Value::from(""));
    let boolean = args.get_bool(1, "boolean")?;
    args.finish(2)?;
    let replace = value.is_undefined() || (boolean && !value.is_true());
    Ok(if replace { fallback } else { value.clone() })
}

/// `dictsort(case_sensitive=False, by='key', reverse=False)` → sorted `(key, value)` tuples.
fn dictsort(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    reject_undefined(value, "dictsort")?;
    let args = CallArgs::new("dictsort", args, kwargs);
    let case_sensitive = args.get_bool(0, "case_sensitive")?;
    let by = args
        .get(1, "by")?
        .map(|v| python_str(&v))
        .unwrap_or_else(|| "key".into());
    let reverse = args.get_bool(2, "reverse")?;
    args.finish(3)?;
    let position = match by.as_str() {
        "key" => 0,
        "value" => 1,
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "dictsort: you can only sort by either \"key\" or \"value\"",
            ));
        }
    };
    let mut pairs: Vec<(Value, Value)> = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        pairs.push((key, item));
    }
    let sort_key = |p: &(Value, Value)| {
        let v = if position == 0 {
            p.0.clone()
        } else {
            p.1.clone()
        };
        match v.as_str() {
            Some(s) if !case_sensitive => Value::from(s.to_lowercase()),
            _ => v,
        }
    };
    // Python's sort is stable and `reverse=True` keeps equal items in their order.
    pairs.sort_by(|a, b| {
        let ordering = sort_key(a).cmp(&sort_key(b));
        if reverse {
            ordering.reverse()
        } else {
            ordering
        }
    });
    Ok(Value::from(
        pairs
            .into_iter()
            .map(|(k, v)| pair(k, v))
            .collect::<Vec<_>>(),
    ))
}

/// `indent(width=4, first=False, blank=False)`; a string width is the indentation itself.
fn indent(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    reject_undefined(value, "indent")?;
    let args = CallArgs::new("indent", args, kwargs);
    let width = args.get(0, "width")?;
    let first = args.get_bool(1, "first")?;
    let blank = args.get_bool(2, "blank")?;
    args.finish(3)?;
    let indentation = match &width {
        None => " ".repeat(4),
        Some(w) if w.kind() == ValueKind::String => w.as_str().unwrap_or_default().to_owned(),
        Some(w) => " ".repeat(usize::try_from(w.clone()).map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "indent: width must be a whole number or a string",
            )
        })?),
    };
    // Jinja2 works on Markup when the text is Markup (the result stays Markup, so it keeps
    // printing as `Markup('…')` in a list). A Markup indentation string (`indent(x | e)`)
    // next to plain text escapes what Markup's `+` and `join` meet, as in Python.
    let text_safe = value.kind() == ValueKind::String && value.is_safe();
    let indentation_safe = text_safe
        || width
            .as_ref()
            .is_some_and(|w| w.kind() == ValueKind::String && w.is_safe());
    // Jinja2 appends a newline before splitting, so a trailing newline survives.
    let text = format!("{}\n", python_str(value));
    let lines = split_lines(&text);
    // Markup's `+` and `join` escape the plain side; when the text is Markup, every piece
    // already is, so only a Markup indentation beside plain text escapes anything.
    let escape_lines = indentation_safe && !text_safe;
    let line_text = |line: &str| {
        if escape_lines {
            super::text::html_escape(line)
        } else {
            line.to_owned()
        }
    };
    let (mut out, mut safe) = if blank {
        // `(newline + indention).join(lines)`: a Markup separator escapes plain lines.
        let joined: Vec<String> = lines.iter().map(|l| line_text(l)).collect();
        (joined.join(&format!("\n{indentation}")), indentation_safe)
    } else {
        let mut rest = lines.iter();
        let mut out = rest.next().map(|s| s.to_string()).unwrap_or_default();
        let tail: Vec<String> = rest
            .map(|line| {
                if line.is_empty() {
                    String::new()
                } else {
                    format!("{indentation}{}", line_text(line))
                }
            })
            .collect();
        if !tail.is_empty() {
            out.push('\n');
            out.push_str(&tail.join("\n"));
        }
        (out, text_safe)
    };
    if first {
        // `indention + rv`: a Markup indentation escapes plain text once more.
        if indentation_safe && !safe {
            out = super::text::html_escape(&out);
            safe = true;
        }
        out.insert_str(0, &indentation);
    }
    Ok(if safe {
        Value::from_safe_string(out)
    } else {
        Value::from(out)
    })
}

/// Python's `str.splitlines()` for the line breaks text meets in practice.
pub(crate) fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(at) => {
                lines.push(&rest[..at]);
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[at + skip..];
            }
            None => {
                lines.push(rest);
                break;
            }
        }
    }
    lines
}

/// `int(default=0, base=10)`: strings parse as integers, then as floats; anything that
/// does not convert gives the default.
fn int(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    reject_undefined(value, "int")?;
    let args = CallArgs::new("int", args, kwargs);
    let default = args.get(0, "default")?.unwrap_or(Value::from(0));
    let base = match args.get(1, "base")? {
        Some(b) => u32::try_from(b)
            .ok()
            .filter(|b| (2..=36).contains(b))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    "int: base must be between 2 and 36",
                )
            })?,
        None => 10,
    };
    args.finish(2)?;
    let converted = match value.kind() {
        ValueKind::Bool => Some(Value::from(i64::from(value.is_true()))),
        ValueKind::Number => match as_float(value) {
            Some(f) if f.is_finite() => Some(float_to_int(f)?),
            Some(_) => None,
            None => Some(value.clone()),
        },
        ValueKind::String => {
            let text = value.as_str().unwrap_or_default().trim();
            match parse_python_int(text, base) {
                Some(i) => Some(Value::from(i)),
                None => match parse_python_float(text).filter(|f| f.is_finite()) {
                    Some(f) => Some(float_to_int(f)?),
                    None => None,
                },
            }
        }
        _ => None,
    };
    Ok(converted.unwrap_or(default))
}

/// Python's `int(float)`: exact, however large (within 128 bits here).
fn float_to_int(f: f64) -> Result<Value, Error> {
    let t = f.trunc();
    if t.abs() < 9.2e18 {
        Ok(Value::from(t as i64))
    } else if t.abs() < 1.7e38 {
        Ok(Value::from(t as i128))
    } else {
        Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "int: converting {} to an integer beyond 128 bits is not supported",
                super::python_float(f)
            ),
        ))
    }
}

/// `float(default=0.0)`.
fn float(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    reject_undefined(value, "float")?;
    let args = CallArgs::new("float", args, kwargs);
    let default = args.get(0, "default")?.unwrap_or(Value::from(0.0));
    args.finish(1)?;
    let converted = match value.kind() {
        ValueKind::Bool => Some(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => parse_python_float(value.as_str().unwrap_or_default().trim()),
        _ => None,
    };
    Ok(converted.map(Value::from).unwrap_or(default))
}

/// Python's `int(text, base)`: an optional sign, the base's own prefix (`0x`, `0o`, `0b`)
/// allowed, `_` between digits.
fn parse_python_int(text: &str, base: u32) -> Option<i64> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let prefixes: &[&str] = match base {
        16 => &["0x", "0X"],
        8 => &["0o", "0O"],
        2 => &["0b", "0B"],
        _ => &[],
    };
    let digits = prefixes
        .iter()
        .find_map(|p| digits.strip_prefix(p))
        .unwrap_or(digits);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let magnitude = i64::from_str_radix(&digits.replace('_', ""), base).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

pub(crate) fn parse_python_float(text: &str) -> Option<f64> {
    // Python's float() takes single underscores between digits: `1_000.5`.
    let owned;
    let text = if text.contains('_') {
        let bytes = text.as_bytes();
        let between_digits = bytes.iter().enumerate().all(|(i, b)| {
            *b != b'_'
                || (i > 0
                    && bytes[i - 1].is_ascii_digit()
                    && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        });
        if !between_digits {
            return None;
        }
        owned = text.replace('_', "");
        owned.as_str()
    } else {
        text
    };
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    let special = matches!(
        text.trim_start_matches(['+', '-'])
            .to_ascii_lowercase()
            .as_str(),
        "inf" | "infinity" | "nan"
    );
    if plain || special {
        text.parse().ok()
    } else {
        None
    }
}

/// Jinja2's `sequence` test accepts anything with a length and indexing: strings and
/// mappings too, and even an undefined value.
fn is_sequence(value: &Value) -> bool {
    // A dict view has a length but no indexing; minijinja's other iterables stand for
    // lists (`a + b` of two lists is one).
    if value
        .downcast_object_ref::<super::methods::DictView>()
        .is_some()
    {
        return false;
    }
    matches!(
        value.kind(),
        ValueKind::String
            | ValueKind::Seq
            | ValueKind::Map
            | ValueKind::Bytes
            | ValueKind::Iterable
            | ValueKind::Undefined
    )
}

fn is_iterable(value: &Value) -> bool {
    matches!(
        value.kind(),
        ValueKind::String
            | ValueKind::Seq
            | ValueKind::Map
            | ValueKind::Bytes
            | ValueKind::Iterable
            | ValueKind::Undefined
    )
}

/// MarkupSafe's escaping, which Jinja2's `escape`/`e` use: `& < > ' "` and nothing else.
/// The result is safe text (Jinja2's Markup), so escaping it again changes nothing.
fn escape(value: &Value) -> Value {
    Value::from_safe_string(super::text::escape_unless_safe(value))
}

/// Jinja2's `lower`/`upper` tests: `str(value).islower()` / `.isupper()`: some cased
/// character, and every cased one in that case.
fn python_case_test(value: &Value, upper: bool) -> bool {
    let text = python_str(value);
    let mut cased = false;
    for c in text.chars() {
        if c.is_lowercase() {
            if upper {
                return false;
            }
            cased = true;
        } else if c.is_uppercase() {
            if !upper {
                return false;
            }
            cased = true;
        }
    }
    cased
}

/// Jinja2's `callable` test: macros and functions (`range`, `dict`, `joiner()`…) are;
/// a cycler is not. minijinja's functions are its only other plain objects.
fn is_callable(value: &Value) -> bool {
    match value.kind() {
        // Jinja2's Undefined defines `__call__` (to fail), so it counts as callable.
        ValueKind::Undefined => true,
        ValueKind::Plain => value
            .downcast_object_ref::<super::globals::Cycler>()
            .is_none(),
        ValueKind::Map => value.to_string().starts_with("<macro "),
        _ => false,
    }
}

/// `attr(name)` looks up an attribute only; a mapping's keys are items, not attributes.
fn attr(value: &Value, name: &str) -> Result<Value, Error> {
    if value.kind() == ValueKind::Map {
        return Ok(Value::UNDEFINED);
    }
    value.get_attr(name)
}

/// Python's `str.title()`: a letter is upper case when the character before it is not a
/// letter (so "it's" becomes "It'S"), unlike Jinja2's `title` filter.
pub(crate) fn python_title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_cased = false;
    for c in text.chars() {
        if previous_cased {
            out.extend(c.to_lowercase());
        } else {
            title_case(c, &mut out);
        }
        // Python starts a word after any character that has no case, letters included
        // (`'日本語off'.title()` is `'日本語Off'`).
        previous_cased = is_cased(c);
    }
    out
}

/// Unicode's `Cased` property: lower case, upper case or title case.
pub(crate) fn is_cased(c: char) -> bool {
    c.is_lowercase()
        || c.is_uppercase()
        || matches!(c as u32,
            0x01C5 | 0x01C8 | 0x01CB | 0x01F2 | 0x1F88..=0x1F8F | 0x1F98..=0x1F9F
            | 0x1FA8..=0x1FAF | 0x1FBC | 0x1FCC | 0x1FFC)
}

/// A character's title case, where it differs from its upper case for the letters
/// drivers may meet (`ß` is `Ss`, the Latin digraphs `ǅ ǈ ǋ ǲ`).
pub(crate) fn title_case(c: char, out: &mut String) {
    match c {
        'ß' => out.push_str("Ss"),
        'Ǆ' | 'ǅ' | 'ǆ' => out.push('ǅ'),
        'Ǉ' | 'ǈ' | 'ǉ' => out.push('ǈ'),
        'Ǌ' | 'ǋ' | 'ǌ' => out.push('ǋ'),
        'Ǳ' | 'ǲ' | 'ǳ' => out.push('ǲ'),
        c => out.extend(c.to_uppercase()),
    }
}

/// Jinja2's `urlencode`: a string is quoted keeping `/`; a mapping or a list of pairs
/// becomes a query string, where `/` is quoted too and spaces become `+`.
fn urlencode(value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::Map => {
            let mut parts = Vec::new();
            for key in value.try_iter()? {
                let item = value.get_item(&key)?;
                parts.push(format!(
                    "{}={}",
                    url_quote(&key, true),
                    url_quote(&item, true)
                ));
            }
            Ok(parts.join("&"))
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let mut parts = Vec::new();
            for item in value.try_iter()? {
                let key = item.get_item(&Value::from(0))?;
                let val = item.get_item(&Value::from(1))?;
                parts.push(format!(
                    "{}={}",
                    url_quote(&key, true),
                    url_quote(&val, true)
                ));
            }
            Ok(parts.join("&"))
        }
        _ => Ok(url_quote(value, false)),
    }
}

fn url_quote(value: &Value, for_query: bool) -> String {
    let mut out = String::new();
    for byte in python_str(value).bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(byte as char)
            }
            b'/' if !for_query => out.push('/'),
            b' ' if for_query => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}
