//! Jinja2's text filters that minijinja lacks, each following the Jinja2 3.1 code:
//! `truncate`, `center`, `wordcount`, `wordwrap`, `striptags`, `filesizeformat`, `xmlattr`,
//! `forceescape`, `pprint`. Where Python's behaviour rests on machinery not reproduced here
//! (textwrap's hyphen splitting, the full HTML entity table, pprint's line wrapping), the
//! filter refuses that input with an error saying so instead of guessing.

use minijinja::value::{Kwargs, Rest, ValueKind};
use minijinja::{Error, ErrorKind, Value};

use super::args::CallArgs;
use super::{python_repr_sorted, python_str};

pub fn register(env: &mut minijinja::Environment<'static>) {
    env.add_filter("truncate", truncate);
    env.add_filter(
        "center",
        |value: &Value, args: Rest<Value>, kwargs: Kwargs| {
            let args = CallArgs::new("center", args, kwargs);
            let width = match args.get(0, "width")? {
                Some(w) => whole(&w, "center", "width")?,
                None => 80,
            };
            args.finish(1)?;
            Ok::<_, Error>(keep_safe(
                value,
                super::methods::center(&python_str(value), width.max(0) as usize, ' '),
            ))
        },
    );
    env.add_filter("wordcount", |value: &Value| {
        let text = python_str(value);
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .count()
    });
    env.add_filter("wordwrap", wordwrap);
    env.add_filter("striptags", striptags);
    env.add_filter("filesizeformat", filesizeformat);
    env.add_filter("xmlattr", xmlattr);
    env.add_filter("forceescape", |value: &Value| {
        Value::from_safe_string(html_escape(&python_str(value)))
    });
    env.add_filter("pprint", pprint);
    // Jinja2 applies these to `str(value)`: a float prints as Python prints it (`1e+16`).
    // Markup's own methods keep text marked safe.
    env.add_filter("upper", |value: &Value| {
        keep_safe(value, python_str(value).to_uppercase())
    });
    env.add_filter("lower", |value: &Value| {
        keep_safe(value, python_str(value).to_lowercase())
    });
    env.add_filter("capitalize", |value: &Value| {
        keep_safe(value, python_capitalize(&python_str(value)))
    });
    env.add_filter("trim", |value: &Value, chars: Option<Value>| {
        let text = python_str(value);
        let trimmed = match chars.filter(|c| !c.is_none()) {
            Some(chars) => {
                let set: Vec<char> = python_str(&chars).chars().collect();
                text.trim_matches(|c| set.contains(&c)).to_owned()
            }
            None => text.trim().to_owned(),
        };
        keep_safe(value, trimmed)
    });
    env.add_filter("title", |value: &Value| jinja_title(&python_str(value)));
    env.add_filter("replace", replace);
}

pub(crate) fn keep_safe(value: &Value, text: String) -> Value {
    if value.is_safe() {
        Value::from_safe_string(text)
    } else {
        Value::from(text)
    }
}

/// Python's `str.capitalize()`: the first character in title case, the rest lower case.
pub(crate) fn python_capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => {
            // Python 3.8+ gives the first character its title case (`ß` is `Ss`).
            let mut out = String::new();
            super::filters::title_case(first, &mut out);
            out.push_str(&chars.as_str().to_lowercase());
            out
        }
        None => String::new(),
    }
}

/// Jinja2's `title`: the text split before runs of `-`, whitespace and opening brackets,
/// each piece's first character upper case and the rest lower case.
fn jinja_title(text: &str) -> String {
    let separator = |c: char| c == '-' || c.is_whitespace() || matches!(c, '(' | '{' | '[' | '<');
    let mut out = String::with_capacity(text.len());
    let mut start_of_piece = true;
    let mut previous_separator: Option<bool> = None;
    for c in text.chars() {
        let sep = separator(c);
        if previous_separator != Some(sep) {
            start_of_piece = true;
        }
        if start_of_piece {
            out.extend(c.to_uppercase());
            start_of_piece = false;
        } else {
            out.extend(c.to_lowercase());
        }
        previous_separator = Some(sep);
    }
    out
}

/// `replace(old, new, count=None)` on `str(value)`.
fn replace(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let args = CallArgs::new("replace", args, kwargs);
    let old = args.get(0, "old")?.map(|v| python_str(&v));
    let new = args.get(1, "new")?.map(|v| python_str(&v));
    let count = match args.get(2, "count")? {
        Some(c) if !c.is_none() => whole(&c, "replace", "count")?,
        _ => -1,
    };
    args.finish(3)?;
    let (Some(old), Some(new)) = (old, new) else {
        return Err(Error::new(
            ErrorKind::MissingArgument,
            "replace: takes the text to replace and its replacement",
        ));
    };
    let text = python_str(value);
    if count < 0 {
        return Ok(text.replace(&old, &new));
    }
    if old.is_empty() {
        // Python inserts `new` before each character (and at the end), up to `count` times.
        let mut out = String::new();
        let mut inserted = 0;
        for c in text.chars() {
            if inserted < count {
                out.push_str(&new);
                inserted += 1;
            }
            out.push(c);
        }
        if inserted < count {
            out.push_str(&new);
        }
        return Ok(out);
    }
    Ok(text.replacen(&old, &new, count as usize))
}

fn unsupported(what: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("{what} is not supported (see docs/drivers.md)"),
    )
}

fn whole(value: &Value, filter: &str, name: &str) -> Result<i64, Error> {
    if value.kind() == ValueKind::Number && value.is_integer() {
        return i64::try_from(value.clone());
    }
    if value.kind() == ValueKind::Bool {
        return Ok(i64::from(value.is_true()));
    }
    Err(Error::new(
        ErrorKind::InvalidOperation,
        format!("{filter}: {name} must be an integer"),
    ))
}

/// MarkupSafe's escaping: `& < > ' "`.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            c => out.push(c),
        }
    }
    out
}

/// `truncate(length=255, killwords=False, end='...', leeway=5)`, lengths in characters.
/// A value short enough comes back as it is (Jinja2 returns `s` itself: a list stays a list,
/// an undefined value stays undefined).
fn truncate(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let args = CallArgs::new("truncate", args, kwargs);
    let length = match args.get(0, "length")? {
        Some(v) => whole(&v, "truncate", "length")?,
        None => 255,
    };
    let killwords = args.get_bool(1, "killwords")?;
    let end = args
        .get(2, "end")?
        .map(|v| python_str(&v))
        .unwrap_or_else(|| "...".into());
    let leeway = match args.get(3, "leeway")? {
        Some(v) if !v.is_none() => whole(&v, "truncate", "leeway")?,
        _ => 5,
    };
    args.finish(4)?;
    let end_len = end.chars().count() as i64;
    if length < end_len {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("truncate: expected length >= {end_len}, got {length}"),
        ));
    }
    if leeway < 0 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("truncate: expected leeway >= 0, got {leeway}"),
        ));
    }
    let len = match value.kind() {
        ValueKind::String => value.as_str().unwrap_or_default().chars().count(),
        ValueKind::Undefined => 0,
        ValueKind::Seq | ValueKind::Map => value.len().unwrap_or(0),
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("truncate: a value of type {} has no len()", value.kind()),
            ));
        }
    };
    if len as i64 <= length + leeway {
        return Ok(value.clone());
    }
    if value.kind() != ValueKind::String {
        return Err(unsupported("truncate of a long list or mapping"));
    }
    let chars: Vec<char> = python_str(value).chars().collect();
    let kept: String = chars[..(length - end_len) as usize].iter().collect();
    let out = if killwords {
        kept + &end
    } else {
        match kept.rsplit_once(' ') {
            Some((head, _)) => head.to_owned() + &end,
            None => kept + &end,
        }
    };
    Ok(keep_safe(value, out))
}

/// `wordwrap(width=79, break_long_words=True, wrapstring=None, break_on_hyphens=True)`:
/// each line wrapped by Python's textwrap, joined with `wrapstring` (a newline).
fn wordwrap(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let args = CallArgs::new("wordwrap", args, kwargs);
    let width = match args.get(0, "width")? {
        Some(v) => whole(&v, "wordwrap", "width")?,
        None => 79,
    };
    let break_long = args.get(1, "break_long_words")?.is_none_or(|v| v.is_true());
    let wrapstring = match args.get(2, "wrapstring")? {
        Some(v) if !v.is_none() => python_str(&v),
        _ => "\n".into(),
    };
    let hyphens = args.get(3, "break_on_hyphens")?.is_none_or(|v| v.is_true());
    args.finish(4)?;
    if width <= 0 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("wordwrap: invalid width {width} (must be > 0)"),
        ));
    }
    super::filters::reject_undefined(value, "wordwrap")?;
    let text = python_str(value);
    if hyphens && text.contains('-') {
        return Err(unsupported(
            "wordwrap of text with hyphens (Python's hyphen splitting)",
        ));
    }
    let wrapped: Vec<String> = super::filters::split_lines(&text)
        .into_iter()
        .map(|line| wrap_line(line, width as usize, break_long).join(&wrapstring))
        .collect();
    Ok(wrapped.join(&wrapstring))
}

/// textwrap.wrap with expand_tabs and replace_whitespace off, no hyphen splitting.
fn wrap_line(line: &str, width: usize, break_long: bool) -> Vec<String> {
    // Chunks: runs of whitespace and runs of anything else.
    let mut chunks: Vec<String> = Vec::new();
    // textwrap splits on ASCII whitespace only.
    let ascii_space = |c: char| matches!(c, '\t' | '\n' | '\x0b' | '\x0c' | '\r' | ' ');
    for c in line.chars() {
        let space = ascii_space(c);
        match chunks.last_mut() {
            Some(last) if last.chars().next().is_some_and(ascii_space) == space => last.push(c),
            _ => chunks.push(c.to_string()),
        }
    }
    chunks.reverse();
    let len = |s: &str| s.chars().count();
    let is_space = |s: &str| s.trim().is_empty();
    let mut lines: Vec<String> = Vec::new();
    while !chunks.is_empty() {
        let mut current: Vec<String> = Vec::new();
        let mut current_len = 0;
        if !lines.is_empty() && chunks.last().is_some_and(|c| is_space(c)) {
            chunks.pop();
        }
        while let Some(chunk) = chunks.last() {
            let l = len(chunk);
            if current_len + l <= width {
                current_len += l;
                current.push(chunks.pop().expect("checked"));
            } else {
                break;
            }
        }
        if let Some(chunk) = chunks.last()
            && len(chunk) > width
        {
            let space_left = width - current_len;
            if break_long {
                let chunk = chunks.pop().expect("checked");
                let head: String = chunk.chars().take(space_left).collect();
                let tail: String = chunk.chars().skip(space_left).collect();
                current.push(head);
                chunks.push(tail);
            } else if current.is_empty() {
                current.push(chunks.pop().expect("checked"));
            }
        }
        if current.last().is_some_and(|c| is_space(c)) {
            current.pop();
        }
        if !current.is_empty() {
            lines.push(current.concat());
        }
    }
    lines
}

/// MarkupSafe's `striptags`: comments and tags removed, whitespace collapsed, entities
/// unescaped. Only the entities below are known; another one is refused.
fn striptags(value: &Value) -> Result<String, Error> {
    let mut text = python_str(value);
    while let Some(start) = text.find("<!--") {
        let Some(end) = text[start..].find("-->").map(|e| e + start) else {
            break;
        };
        text.replace_range(start..end + 3, "");
    }
    while let Some(start) = text.find('<') {
        let Some(end) = text[start..].find('>').map(|e| e + start) else {
            break;
        };
        text.replace_range(start..end + 1, "");
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    unescape_entities(&collapsed)
}

fn unescape_entities(text: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let named = [
            ("&amp;", '&'),
            ("&lt;", '<'),
            ("&gt;", '>'),
            ("&quot;", '"'),
            ("&#39;", '\''),
            ("&#34;", '"'),
        ];
        if let Some((entity, c)) = named.iter().find(|(e, _)| rest.starts_with(e)) {
            out.push(*c);
            rest = &rest[entity.len()..];
            continue;
        }
        let next = rest[1..].chars().next();
        if next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '#') {
            return Err(unsupported(format!(
                "striptags of text with the HTML entity {:?}",
                rest.chars().take(10).collect::<String>()
            )));
        }
        out.push('&');
        rest = &rest[1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `filesizeformat(binary=False)`: `1 Byte`, `12 Bytes`, `12.3 kB`, `1.0 KiB`…
fn filesizeformat(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    super::filters::reject_undefined(value, "filesizeformat")?;
    let args = CallArgs::new("filesizeformat", args, kwargs);
    let binary = args.get_bool(0, "binary")?;
    args.finish(1)?;
    let bytes = match value.kind() {
        ValueKind::Number => f64::try_from(value.clone())?,
        ValueKind::Bool => f64::from(u8::from(value.is_true())),
        ValueKind::String => {
            super::filters::parse_python_float(value.as_str().unwrap_or_default().trim())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "filesizeformat: could not convert string to float: {}",
                            python_str(value)
                        ),
                    )
                })?
        }
        _ => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "filesizeformat: the value must be a number",
            ));
        }
    };
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    let prefixes: [&str; 8] = if binary {
        ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
    } else {
        ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    };
    if bytes == 1.0 {
        return Ok("1 Byte".into());
    }
    if bytes < base {
        return Ok(format!("{} Bytes", bytes.trunc() as i64));
    }
    for (i, prefix) in prefixes.iter().enumerate() {
        // Python computes `base ** (i + 2)` exactly as an integer, then divides as floats.
        let unit: f64 = if binary {
            2f64.powi(10 * (i as i32 + 2))
        } else {
            format!("1e{}", 3 * (i + 2))
                .parse()
                .expect("a float literal")
        };
        if bytes < unit || i == prefixes.len() - 1 {
            return Ok(format!("{:.1} {prefix}", base * bytes / unit));
        }
    }
    unreachable!("the last prefix returns")
}

/// `xmlattr(autospace=True)`: `key="value"` pairs, escaped; none and undefined values left out.
fn xmlattr(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    super::filters::reject_undefined(value, "xmlattr")?;
    let args = CallArgs::new("xmlattr", args, kwargs);
    let autospace = args.get(0, "autospace")?.is_none_or(|v| v.is_true());
    args.finish(1)?;
    if value.kind() != ValueKind::Map {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "xmlattr: the value must be a mapping",
        ));
    }
    let mut items = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        if item.is_none() || item.is_undefined() {
            continue;
        }
        let name = python_str(&key);
        if name.contains(|c: char| c.is_whitespace() || matches!(c, '/' | '>' | '=')) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("xmlattr: invalid character in attribute name: {name:?}"),
            ));
        }
        items.push(format!(
            "{}=\"{}\"",
            html_escape(&name),
            escape_unless_safe(&item)
        ));
    }
    let mut out = items.join(" ");
    if autospace && !out.is_empty() {
        out.insert(0, ' ');
    }
    // Jinja2 marks the result safe only under autoescape.
    Ok(Value::from(out))
}

/// `escape(value)`: text already marked safe (Jinja2's Markup) is left alone.
pub fn escape_unless_safe(value: &Value) -> String {
    if value.is_safe() {
        python_str(value)
    } else {
        html_escape(&python_str(value))
    }
}

/// `pprint`: Python's `pprint.pformat`, dict keys sorted. Values whose one-line form is
/// longer than 80 characters would be wrapped by pprint: refused.
fn pprint(value: &Value) -> Result<String, Error> {
    let text = python_repr_sorted(value);
    if text.chars().count() > 80 {
        return Err(unsupported(
            "pprint of a value longer than 80 characters (Python wraps it)",
        ));
    }
    Ok(text)
}
