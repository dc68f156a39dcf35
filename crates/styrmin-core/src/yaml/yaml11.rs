//! Rendered Helm values read as PyYAML's `yaml.safe_load` reads them (YAML 1.1), into JSON.
//!
//! Plain scalars resolve with PyYAML's implicit resolvers: `yes`/`no`/`on`/`off` booleans,
//! `0644` octal, `0b`/`0x`, `1_000`, base-60 `1:30`, floats only with a dot (`1e3` stays a
//! string), timestamps. Merge keys `<<` merge mappings; a key written twice keeps its first
//! place and its last value, with Python's key equality (`1`, `1.0` and `true` are one key).
//! Timestamps become Python's `isoformat()` text. What JSON cannot carry (infinite floats,
//! `!!binary`, `!!set`, integers beyond 64 bits) is refused with its line.

use std::rc::Rc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// Why the text could not be read; `unsupported` marks a value JSON cannot carry.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub unsupported: bool,
}

/// A mapping entry: key node, value node.
type Entry = (Rc<Node>, Rc<Node>);

#[derive(Debug)]
enum Node {
    Scalar {
        text: String,
        plain: bool,
        tag: Option<String>,
        span: (usize, usize),
    },
    Seq {
        items: Vec<Rc<Node>>,
        tag: Option<String>,
        span: (usize, usize),
    },
    Map {
        entries: Vec<Entry>,
        tag: Option<String>,
        span: (usize, usize),
    },
}

impl Node {
    fn span(&self) -> (usize, usize) {
        match self {
            Node::Scalar { span, .. } | Node::Seq { span, .. } | Node::Map { span, .. } => *span,
        }
    }
}

fn error_at(span: (usize, usize), message: impl Into<String>) -> ReadError {
    ReadError {
        line: span.0,
        column: span.1,
        message: message.into(),
        unsupported: false,
    }
}

fn unsupported_at(span: (usize, usize), what: impl std::fmt::Display) -> ReadError {
    ReadError {
        line: span.0,
        column: span.1,
        message: format!("{what} is not supported as a Helm value"),
        unsupported: true,
    }
}

fn position(span: &Span) -> (usize, usize) {
    (span.start.line(), span.start.col() + 1)
}

/// The text's one document as JSON; `None` for an empty document.
pub fn load(text: &str) -> Result<Option<Value>, ReadError> {
    let root = compose_pyyaml(text)?;
    match root {
        None => Ok(None),
        Some(node) => construct(&node).map(Some),
    }
}

/// PyYAML takes a comment right after a token (`"x"#c`), where YAML 1.2 wants a space
/// first: such a `#` gets its space and the text is read again. PyYAML also reads a flow
/// collection or a quoted string continued on a line indented less than its key, which
/// YAML 1.2 refuses: such lines are indented (their leading spaces are not part of the
/// value in either reading) and the text is read again.
fn compose_pyyaml(text: &str) -> Result<Option<Rc<Node>>, ReadError> {
    let mut text = std::borrow::Cow::Borrowed(text);
    let mut reindented = false;
    for _ in 0..64 {
        match compose(&text) {
            Err(e) if e.message.starts_with("invalid indentation") && !reindented => {
                reindented = true;
                match indent_flow_continuations(&text) {
                    Some(indented) => text = std::borrow::Cow::Owned(indented),
                    None => return Err(e),
                }
            }
            Err(e) if e.message == "comments must be separated from other tokens by whitespace" => {
                let Some(line_start) = line_offset(&text, e.line) else {
                    return Err(e);
                };
                let line = &text[line_start..];
                let Some(hash) = line
                    .char_indices()
                    .take_while(|(_, c)| *c != '\n')
                    .skip(e.column.saturating_sub(1))
                    .find(|(_, c)| *c == '#')
                    .map(|(at, _)| line_start + at)
                else {
                    return Err(e);
                };
                let mut spaced = text.into_owned();
                spaced.insert(hash, ' ');
                text = std::borrow::Cow::Owned(spaced);
            }
            other => return other,
        }
    }
    compose(&text)
}

/// The text with every line that continues a flow collection (`[ ]`, `{ }`) or a quoted
/// string of block context indented one column past the character that opened it, where it
/// was indented less; `None` when no line needed it. PyYAML ignores the indentation of
/// such lines, and their leading spaces belong to no value (flow line folding drops them),
/// so the reading is unchanged. A line starting with `---` or `...` is left alone: it ends
/// the document in PyYAML.
fn indent_flow_continuations(text: &str) -> Option<String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut changed = false;
    // Flow depth, the quote being read, and the column that opened the outermost one.
    let mut depth = 0usize;
    let mut quote = Quote::None;
    let mut opened_at = 0usize;
    // Lines more indented than this belong to a block scalar (`|`, `>`).
    let mut block_scalar_above: Option<usize> = None;
    let mut token_start = true;
    for line in text.split_inclusive('\n') {
        let indentation = line.len() - line.trim_start_matches(' ').len();
        let content = line.trim_end_matches(['\n', '\r']);
        let blank = content.trim().is_empty();
        if let Some(limit) = block_scalar_above {
            if blank || indentation > limit {
                out.push_str(line);
                continue;
            }
            block_scalar_above = None;
        }
        let continuing = depth > 0 || quote != Quote::None;
        let marker = (content.starts_with("---") || content.starts_with("..."))
            && content[3..].chars().next().is_none_or(char::is_whitespace);
        let mut shift = 0;
        if continuing && !blank && !marker && indentation <= opened_at {
            shift = opened_at + 1 - indentation;
            changed = true;
            out.extend(std::iter::repeat_n(' ', shift));
        }
        out.push_str(line);
        // Scan the line: flow brackets and quotes at token starts, comments.
        let chars: Vec<char> = content.chars().collect();
        let mut i = 0;
        // Block context: a node starts after the indentation, `- `, `? ` or `: `.
        if !continuing {
            token_start = true;
        }
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let next_blank = next.is_none_or(|n| n == ' ' || n == '\t');
            match quote {
                Quote::Single => {
                    if c == '\'' {
                        if next == Some('\'') {
                            i += 2;
                            continue;
                        }
                        quote = Quote::None;
                        token_start = false;
                    }
                    i += 1;
                    continue;
                }
                Quote::Double => {
                    if c == '\\' {
                        i += 2;
                        continue;
                    }
                    if c == '"' {
                        quote = Quote::None;
                        token_start = false;
                    }
                    i += 1;
                    continue;
                }
                Quote::None => {}
            }
            if c == ' ' || c == '\t' {
                i += 1;
                continue;
            }
            // A `#` at the start of a line or after whitespace starts a comment.
            if c == '#' && (i == 0 || matches!(chars[i - 1], ' ' | '\t')) {
                break;
            }
            let column = shift + i;
            if depth > 0 {
                match c {
                    '[' | '{' => {
                        depth += 1;
                        token_start = true;
                    }
                    ']' | '}' => {
                        depth -= 1;
                        token_start = false;
                    }
                    ',' | '?' => token_start = true,
                    ':' => token_start = true,
                    '\'' | '"' if token_start => {
                        quote = if c == '"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        };
                    }
                    _ => token_start = false,
                }
                i += 1;
                continue;
            }
            // Block context.
            if token_start {
                match c {
                    '[' | '{' => {
                        depth = 1;
                        opened_at = column;
                        token_start = true;
                        i += 1;
                        continue;
                    }
                    '\'' | '"' => {
                        quote = if c == '"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        };
                        opened_at = column;
                        i += 1;
                        continue;
                    }
                    '|' | '>' => {
                        block_scalar_above = Some(indentation + shift);
                        break;
                    }
                    '-' | '?' | ':' if next_blank => {
                        i += 1;
                        continue;
                    }
                    '&' | '!' | '*' => {
                        // An anchor, tag or alias: skip its name.
                        while i < chars.len() && chars[i] != ' ' {
                            i += 1;
                        }
                        continue;
                    }
                    _ => token_start = false,
                }
            }
            // A plain scalar or after a quoted one: a `: ` starts the value.
            if c == ':' && next_blank {
                token_start = true;
            }
            i += 1;
        }
    }
    changed.then_some(out)
}

/// The byte offset where 1-based `line` starts.
fn line_offset(text: &str, line: usize) -> Option<usize> {
    if line <= 1 {
        return Some(0);
    }
    text.match_indices('\n').nth(line - 2).map(|(at, _)| at + 1)
}

enum Open {
    Seq(Vec<Rc<Node>>, Option<String>, (usize, usize), usize),
    Map(
        Vec<Entry>,
        Option<Rc<Node>>,
        Option<String>,
        (usize, usize),
        usize,
    ),
}

fn tag_text(tag: Option<std::borrow::Cow<'_, saphyr_parser::Tag>>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

/// Events to a tree, aliases sharing their anchored node. A second document is an error,
/// as in `safe_load`.
fn compose(text: &str) -> Result<Option<Rc<Node>>, ReadError> {
    // Character ranges of quoted and block scalars: the only places PyYAML takes a tab.
    let mut tab_ranges: Vec<(usize, usize)> = Vec::new();
    // Character ranges of every scalar: an `&` or `*` outside them starts an anchor or alias.
    let mut scalar_ranges: Vec<(usize, usize)> = Vec::new();
    let mut chars: Option<Vec<char>> = None;
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: std::collections::HashMap<usize, Rc<Node>> = Default::default();
    let mut root: Option<Rc<Node>> = None;
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            let (line, column) = (e.marker().line(), e.marker().col() + 1);
            // YAML 1.1 (PyYAML) lets a quoted string go on at any indentation; YAML 1.2
            // parsers refuse it. Say so rather than call the text invalid.
            if matches!(
                e.info(),
                "invalid indentation in quoted scalar"
                    | "invalid indentation in flow construct"
                    | "invalid indentation"
            ) {
                ReadError {
                    line,
                    column,
                    message: format!("{}: a quoted string or a flow collection continued on a line indented less than its key is not supported (PyYAML reads some of these; indent the continuation or use tojson)", e.info()),
                    unsupported: true,
                }
            } else {
                ReadError {
                    line,
                    column,
                    message: e.info().to_owned(),
                    unsupported: false,
                }
            }
        })?;
        let pos = position(&span);
        // A scalar written over more than one line (a quoted or plain one).
        let mut multiline = false;
        let (node, anchor) = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(error_at(
                        pos,
                        "expected a single document in the stream, but found another document",
                    ));
                }
                continue;
            }
            Event::Scalar(text, style, anchor, tag) => {
                // A plain scalar never starts with `|` or `>` in PyYAML: in block context
                // they start block scalars, and inside `[ ]`/`{ }` (where YAML 1.2 parsers
                // read `|x` as plain text) PyYAML's scanner refuses them.
                if style == ScalarStyle::Plain
                    && let Some(c @ ('|' | '>')) = text.chars().next()
                {
                    return Err(error_at(
                        pos,
                        format!("found character '{c}' that cannot start any token"),
                    ));
                }
                multiline = span.end.line() != span.start.line();
                if style != ScalarStyle::Plain {
                    tab_ranges.push((span.start.index(), span.end.index()));
                }
                // An anchored scalar's span starts at its anchor, which must be checked.
                if anchor == 0 {
                    scalar_ranges.push((span.start.index(), span.end.index()));
                }
                (
                    Rc::new(Node::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                        tag: tag_text(tag),
                        span: pos,
                    }),
                    anchor,
                )
            }
            Event::Alias(id) => match anchors.get(&id) {
                Some(node) => (node.clone(), 0),
                None => return Err(error_at(pos, "found undefined alias")),
            },
            Event::SequenceStart(anchor, tag) => {
                stack.push(Open::Seq(Vec::new(), tag_text(tag), pos, anchor));
                continue;
            }
            Event::MappingStart(anchor, tag) => {
                stack.push(Open::Map(Vec::new(), None, tag_text(tag), pos, anchor));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Seq(items, tag, span, anchor)) => {
                    (Rc::new(Node::Seq { items, tag, span }), anchor)
                }
                Some(Open::Map(entries, _, tag, span, anchor)) => {
                    (Rc::new(Node::Map { entries, tag, span }), anchor)
                }
                None => continue,
            },
            _ => continue,
        };
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq(items, ..)) => items.push(node),
            Some(Open::Map(entries, pending, ..)) => match pending.take() {
                None => {
                    // PyYAML's implicit keys are one line long: a key scalar over more
                    // lines (`{'a\nb': 1}`, which YAML 1.2 parsers may take) needs `? `.
                    if multiline {
                        let chars = chars.get_or_insert_with(|| text.chars().collect());
                        let explicit = chars[..span_index(chars, pos)]
                            .iter()
                            .rev()
                            .find(|c| !c.is_whitespace())
                            == Some(&'?');
                        if !explicit {
                            return Err(error_at(
                                pos,
                                "while scanning a simple key: a mapping key must be on one line",
                            ));
                        }
                    }
                    // PyYAML has no implicit empty key (`- : b`, `{: b}`), only `? `.
                    if let Node::Scalar {
                        text: key,
                        plain: true,
                        tag: None,
                        span,
                        ..
                    } = &*node
                        && key.is_empty()
                    {
                        let chars = chars.get_or_insert_with(|| text.chars().collect());
                        let explicit = chars[..span_index(chars, *span)]
                            .iter()
                            .rev()
                            .find(|c| !c.is_whitespace())
                            == Some(&'?');
                        if !explicit {
                            return Err(error_at(
                                *span,
                                "while parsing a mapping: found ':' without a key",
                            ));
                        }
                    }
                    *pending = Some(node)
                }
                Some(key) => entries.push((key, node)),
            },
        }
    }
    if text.contains('\t') {
        check_tabs(text, &tab_ranges)?;
    }
    if text.contains(['&', '*']) {
        check_anchor_names(text, &scalar_ranges)?;
    }
    Ok(root)
}

/// PyYAML's anchor and alias names are `[0-9A-Za-z_-]+`, followed by a space, a line
/// break or a flow indicator; YAML 1.2 parsers take more (`&#39;`).
fn check_anchor_names(text: &str, scalars: &[(usize, usize)]) -> Result<(), ReadError> {
    let chars: Vec<char> = text.chars().collect();
    let (mut line, mut column) = (1, 0);
    let mut in_comment = false;
    for (index, &c) in chars.iter().enumerate() {
        column += 1;
        if c == '\n' {
            line += 1;
            column = 0;
            in_comment = false;
            continue;
        }
        let inside = scalars
            .iter()
            .any(|(start, end)| (*start..*end).contains(&index));
        if inside || in_comment {
            continue;
        }
        if c == '#' && (index == 0 || chars[index - 1].is_whitespace()) {
            in_comment = true;
            continue;
        }
        if c != '&' && c != '*' {
            continue;
        }
        let name_len = chars[index + 1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
            .count();
        let next = chars.get(index + 1 + name_len).copied();
        let ends_well = next.is_none_or(|n| {
            matches!(
                n,
                ' ' | '\t' | '\r' | '\n' | '?' | ':' | ',' | ']' | '}' | '%' | '@' | '`'
            )
        });
        if name_len == 0 || !ends_well {
            let what = if c == '&' { "an anchor" } else { "an alias" };
            return Err(error_at(
                (line, column),
                format!(
                    "while scanning {what}: expected alphabetic or numeric character, but found {:?}",
                    next.unwrap_or('\0')
                ),
            ));
        }
    }
    Ok(())
}

/// The character index of a (line, column) position.
fn span_index(chars: &[char], (line, column): (usize, usize)) -> usize {
    let mut current = 1;
    let mut start = 0;
    for (i, c) in chars.iter().enumerate() {
        if current == line {
            start = i;
            break;
        }
        if *c == '\n' {
            current += 1;
            start = i + 1;
        }
    }
    (start + column.saturating_sub(1)).min(chars.len())
}

/// PyYAML's scanner skips only spaces between tokens and ends a plain scalar at a tab, so a
/// tab anywhere but inside a quoted or block scalar or a comment is an error there.
fn check_tabs(text: &str, allowed: &[(usize, usize)]) -> Result<(), ReadError> {
    let (mut line, mut column) = (1, 0);
    let mut in_comment = false;
    let mut previous = '\n';
    for (index, c) in text.chars().enumerate() {
        column += 1;
        let inside = allowed
            .iter()
            .any(|(start, end)| (*start..*end).contains(&index));
        match c {
            '\n' => {
                line += 1;
                column = 0;
                in_comment = false;
            }
            '#' if !inside && matches!(previous, ' ' | '\t' | '\n') => in_comment = true,
            '\t' if !inside && !in_comment => {
                return Err(error_at(
                    (line, column),
                    "found character '\\t' that cannot start any token",
                ));
            }
            _ => {}
        }
        previous = c;
    }
    Ok(())
}

/// A resolved scalar, before it becomes JSON.
#[derive(Debug, Clone, PartialEq)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    /// A timestamp, already in Python's `isoformat()` form.
    Time(String),
    Merge,
}

const CORE: &str = "tag:yaml.org,2002:";

fn construct(node: &Rc<Node>) -> Result<Value, ReadError> {
    match &**node {
        Node::Scalar { span, .. } => scalar_value(scalar(node)?, *span),
        Node::Seq { items, tag, span } => {
            check_collection_tag(tag.as_deref(), "seq", *span)?;
            items
                .iter()
                .map(construct)
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Node::Map { tag, span, .. } => {
            check_collection_tag(tag.as_deref(), "map", *span)?;
            let mut entries: Vec<(Key, Value)> = Vec::new();
            for (key, value) in flatten(node)? {
                let key_span = key.span();
                let key = match &*key {
                    Node::Scalar { .. } => Key::of(scalar(&key)?, key_span)?,
                    _ => return Err(error_at(key_span, "found unhashable key")),
                };
                let value = construct(&value)?;
                match entries.iter_mut().find(|(k, _)| k.same(&key)) {
                    Some(entry) => entry.1 = value,
                    None => entries.push((key, value)),
                }
            }
            let mut map = Map::new();
            for (key, value) in entries {
                map.insert(key.text, value);
            }
            Ok(Value::Object(map))
        }
    }
}

fn check_collection_tag(
    tag: Option<&str>,
    kind: &str,
    span: (usize, usize),
) -> Result<(), ReadError> {
    match tag {
        None => Ok(()),
        Some(t) if t == format!("{CORE}{kind}") => Ok(()),
        Some(t)
            if t == format!("{CORE}set")
                || t == format!("{CORE}omap")
                || t == format!("{CORE}pairs") =>
        {
            Err(unsupported_at(span, format!("the tag {t}")))
        }
        Some(t) => Err(error_at(
            span,
            format!("could not determine a constructor for the tag '{t}'"),
        )),
    }
}

/// PyYAML's `flatten_mapping`: the entries of `<<` mappings first (the first of a list of
/// them winning), then the mapping's own entries.
fn flatten(node: &Rc<Node>) -> Result<Vec<Entry>, ReadError> {
    let Node::Map { entries, .. } = &**node else {
        return Ok(Vec::new());
    };
    let mut merged = Vec::new();
    let mut own = Vec::new();
    for (key, value) in entries {
        let is_merge = matches!(&**key, Node::Scalar { .. }) && scalar(key)? == Scalar::Merge;
        if !is_merge {
            own.push((key.clone(), value.clone()));
            continue;
        }
        match &**value {
            Node::Map { .. } => merged.extend(flatten(value)?),
            Node::Seq { items, .. } => {
                let mut parts = Vec::new();
                for item in items {
                    if !matches!(&**item, Node::Map { .. }) {
                        return Err(error_at(
                            item.span(),
                            "while constructing a mapping: expected a mapping for merging",
                        ));
                    }
                    parts.push(flatten(item)?);
                }
                for part in parts.into_iter().rev() {
                    merged.extend(part);
                }
            }
            other => {
                return Err(error_at(
                    other.span(),
                    "while constructing a mapping: expected a mapping or list of mappings for merging",
                ));
            }
        }
    }
    merged.extend(own);
    Ok(merged)
}

/// A mapping key with Python's equality: `True == 1 == 1.0`.
struct Key {
    identity: Scalar,
    text: String,
}

impl Key {
    fn of(scalar: Scalar, span: (usize, usize)) -> Result<Key, ReadError> {
        let text = match &scalar {
            Scalar::Str(s) | Scalar::Time(s) => s.clone(),
            Scalar::Null => "null".into(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => crate::render::jinja::python_float(*f),
            Scalar::Merge => "<<".into(),
        };
        let identity = match scalar {
            Scalar::Bool(b) => Scalar::Int(i128::from(b)),
            Scalar::Float(f) if f.fract() == 0.0 && f.abs() < 1e30 => Scalar::Int(f as i128),
            Scalar::Merge => return Err(error_at(span, "a merge key `<<` cannot be a value key")),
            other => other,
        };
        Ok(Key { identity, text })
    }

    fn same(&self, other: &Key) -> bool {
        self.identity == other.identity
    }
}

fn scalar_value(scalar: Scalar, span: (usize, usize)) -> Result<Value, ReadError> {
    Ok(match scalar {
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => {
            if let Ok(i) = i64::try_from(i) {
                Value::from(i)
            } else if let Ok(u) = u64::try_from(i) {
                Value::from(u)
            } else {
                return Err(unsupported_at(
                    span,
                    format!("the integer {i}, beyond 64 bits,"),
                ));
            }
        }
        Scalar::Float(f) => match Number::from_f64(f) {
            Some(n) => Value::Number(n),
            None => {
                return Err(unsupported_at(
                    span,
                    format!("the float {}", crate::render::jinja::python_float(f)),
                ));
            }
        },
        Scalar::Str(s) | Scalar::Time(s) => Value::String(s),
        Scalar::Merge => {
            return Err(error_at(
                span,
                "could not determine a constructor for the tag 'tag:yaml.org,2002:merge'",
            ));
        }
    })
}

/// A scalar node's value under its tag, or the implicit resolvers when it is plain.
fn scalar(node: &Node) -> Result<Scalar, ReadError> {
    let Node::Scalar {
        text,
        plain,
        tag,
        span,
    } = node
    else {
        return Err(error_at(node.span(), "expected a scalar node"));
    };
    let span = *span;
    let bad = |kind: &str| error_at(span, format!("invalid {kind}: {text:?}"));
    match tag.as_deref() {
        // The non-specific tag `!` resolves the text as if it were plain (PyYAML does so
        // even for a quoted scalar).
        None if *plain => resolve_plain(text, span),
        Some("!") => resolve_plain(text, span),
        None => Ok(Scalar::Str(text.clone())),
        Some(tag) => match tag.strip_prefix(CORE) {
            Some("str") => Ok(Scalar::Str(text.clone())),
            Some("null") => Ok(Scalar::Null),
            Some("bool") => match text.to_lowercase().as_str() {
                "yes" | "true" | "on" => Ok(Scalar::Bool(true)),
                "no" | "false" | "off" => Ok(Scalar::Bool(false)),
                _ => Err(bad("boolean")),
            },
            Some("int") => construct_int(text).ok_or_else(|| bad("integer")),
            Some("float") => construct_float(text).ok_or_else(|| bad("float")),
            Some("timestamp") => timestamp(text, span)?.ok_or_else(|| bad("timestamp")),
            Some("binary") => Err(unsupported_at(span, "the tag !!binary")),
            Some("merge") => Ok(Scalar::Merge),
            _ => Err(error_at(
                span,
                format!("could not determine a constructor for the tag '{tag}'"),
            )),
        },
    }
}

fn resolve_plain(text: &str, span: (usize, usize)) -> Result<Scalar, ReadError> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Ok(Scalar::Bool(true));
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Ok(Scalar::Bool(false));
        }
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Scalar::Null),
        "<<" => return Ok(Scalar::Merge),
        "=" => {
            return Err(error_at(
                span,
                "could not determine a constructor for the tag 'tag:yaml.org,2002:value'",
            ));
        }
        _ => {}
    }
    if is_float(text)
        && let Some(f) = construct_float(text)
    {
        return Ok(f);
    }
    if is_int(text) {
        return construct_int(text)
            .ok_or_else(|| error_at(span, format!("invalid integer: {text:?}")));
    }
    if let Some(time) = timestamp(text, span)? {
        return Ok(time);
    }
    Ok(Scalar::Str(text.to_owned()))
}

fn digits_or_underscores(s: &str, digit: impl Fn(u8) -> bool) -> bool {
    s.bytes().all(|b| digit(b) || b == b'_')
}

/// `[0-9][0-9_]*` (must start with a digit).
fn decimal_run(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && digits_or_underscores(s, |b| b.is_ascii_digit())
}

/// `(:[0-5]?[0-9])+` after a leading run: base-60 groups.
fn sexagesimal_groups(groups: &[&str]) -> bool {
    !groups.is_empty()
        && groups.iter().all(|g| {
            let b = g.as_bytes();
            match b.len() {
                1 => b[0].is_ascii_digit(),
                2 => (b'0'..=b'5').contains(&b[0]) && b[1].is_ascii_digit(),
                _ => false,
            }
        })
}

/// PyYAML's float resolver.
fn is_float(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let signed = unsigned.len() != text.len();
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    // \.[0-9][0-9_]*([eE][-+][0-9]+)? — no sign allowed.
    if !signed && let Some(rest) = text.strip_prefix('.') {
        let (mantissa, exponent) = split_exponent(rest);
        return decimal_run(mantissa) && exponent.is_none_or(valid_exponent);
    }
    // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
    if let Some((head, fraction)) = unsigned.rsplit_once('.')
        && head.contains(':')
    {
        let mut parts = head.split(':');
        let first = parts.next().unwrap_or_default();
        let groups: Vec<&str> = parts.collect();
        return decimal_run(first)
            && sexagesimal_groups(&groups)
            && digits_or_underscores(fraction, |b| b.is_ascii_digit());
    }
    // [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?
    let Some((whole, rest)) = unsigned.split_once('.') else {
        return false;
    };
    let (fraction, exponent) = split_exponent(rest);
    decimal_run(whole)
        && digits_or_underscores(fraction, |b| b.is_ascii_digit())
        && exponent.is_none_or(valid_exponent)
}

fn split_exponent(s: &str) -> (&str, Option<&str>) {
    match s.find(['e', 'E']) {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    }
}

/// `[-+][0-9]+`: PyYAML requires the exponent's sign.
fn valid_exponent(e: &str) -> bool {
    e.strip_prefix(['-', '+'])
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
}

/// PyYAML's int resolver.
fn is_int(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if let Some(bits) = unsigned.strip_prefix("0b") {
        return !bits.is_empty() && digits_or_underscores(bits, |b| b == b'0' || b == b'1');
    }
    if let Some(hex) = unsigned.strip_prefix("0x") {
        return !hex.is_empty() && digits_or_underscores(hex, |b| b.is_ascii_hexdigit());
    }
    if let Some(octal) = unsigned.strip_prefix('0')
        && !octal.is_empty()
    {
        return digits_or_underscores(octal, |b| (b'0'..=b'7').contains(&b));
    }
    if unsigned == "0" {
        return true;
    }
    if unsigned.contains(':') {
        let mut parts = unsigned.split(':');
        let first = parts.next().unwrap_or_default();
        let groups: Vec<&str> = parts.collect();
        return first
            .as_bytes()
            .first()
            .is_some_and(|b| (b'1'..=b'9').contains(b))
            && decimal_run(first)
            && sexagesimal_groups(&groups);
    }
    unsigned
        .as_bytes()
        .first()
        .is_some_and(|b| (b'1'..=b'9').contains(b))
        && decimal_run(unsigned)
}

/// PyYAML's `construct_yaml_int`.
fn construct_int(text: &str) -> Option<Scalar> {
    let cleaned = text.replace('_', "");
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (
            false,
            cleaned.strip_prefix('+').unwrap_or(&cleaned).to_owned(),
        ),
    };
    let magnitude: i128 = if digits == "0" {
        0
    } else if let Some(bits) = digits.strip_prefix("0b") {
        i128::from_str_radix(bits, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if digits.starts_with('0') {
        i128::from_str_radix(&digits, 8).ok()?
    } else if digits.contains(':') {
        let mut value: i128 = 0;
        for part in digits.split(':') {
            value = value.checked_mul(60)?.checked_add(part.parse().ok()?)?;
        }
        value
    } else {
        digits.parse().ok()?
    };
    Some(Scalar::Int(if negative { -magnitude } else { magnitude }))
}

/// PyYAML's `construct_yaml_float`.
fn construct_float(text: &str) -> Option<Scalar> {
    let cleaned = text.replace('_', "").to_lowercase();
    let (negative, body) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest.to_owned()),
        None => (
            false,
            cleaned.strip_prefix('+').unwrap_or(&cleaned).to_owned(),
        ),
    };
    let sign = if negative { -1.0 } else { 1.0 };
    let value = if body == ".inf" {
        f64::INFINITY
    } else if body == ".nan" {
        f64::NAN
    } else if body.contains(':') {
        // PyYAML sums the parts from the last, in floats: the rounding follows it.
        let mut value = 0.0;
        let mut base = 1.0;
        for part in body.rsplit(':') {
            value += part.parse::<f64>().ok()? * base;
            base *= 60.0;
        }
        value
    } else {
        // Python's float() takes "1." and ".5"; Rust's parser too.
        body.parse::<f64>().ok()?
    };
    Some(Scalar::Float(sign * value))
}

/// PyYAML's timestamp resolver and constructor; `Ok(None)` when the text is not one.
fn timestamp(text: &str, span: (usize, usize)) -> Result<Option<Scalar>, ReadError> {
    let b = text.as_bytes();
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    // YYYY-MM-DD alone.
    if b.len() == 10
        && (0..4).all(digit)
        && b[4] == b'-'
        && digit(5)
        && digit(6)
        && b[7] == b'-'
        && digit(8)
        && digit(9)
    {
        let (y, m, d) = (&text[0..4], &text[5..7], &text[8..10]);
        return date(y, m, d, span).map(|date| Some(Scalar::Time(date)));
    }
    // YYYY-M(M)-D(D)(T|t|[ \t]+)H(H):MM:SS(.fraction)?([ \t]*(Z|[-+]H(H)(:MM)?))?
    let mut i = 0;
    let take_digits = |i: &mut usize, min: usize, max: usize| -> Option<&str> {
        let start = *i;
        while *i < b.len() && *i - start < max && b[*i].is_ascii_digit() {
            *i += 1;
        }
        (*i - start >= min).then(|| &text[start..*i])
    };
    let expect = |i: &mut usize, c: u8| -> Option<()> { (b.get(*i) == Some(&c)).then(|| *i += 1) };
    let parsed = (|| {
        let year = take_digits(&mut i, 4, 4)?;
        expect(&mut i, b'-')?;
        let month = take_digits(&mut i, 1, 2)?;
        expect(&mut i, b'-')?;
        let day = take_digits(&mut i, 1, 2)?;
        match b.get(i) {
            Some(b'T' | b't') => i += 1,
            Some(b' ' | b'\t') => {
                while matches!(b.get(i), Some(b' ' | b'\t')) {
                    i += 1;
                }
            }
            _ => return None,
        }
        let hour = take_digits(&mut i, 1, 2)?;
        expect(&mut i, b':')?;
        let minute = take_digits(&mut i, 2, 2)?;
        expect(&mut i, b':')?;
        let second = take_digits(&mut i, 2, 2)?;
        let mut fraction = "";
        if b.get(i) == Some(&b'.') {
            i += 1;
            fraction = take_digits(&mut i, 0, usize::MAX)?;
        }
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let mut zone = None;
        match b.get(i) {
            None => {}
            Some(b'Z') => {
                i += 1;
                zone = Some((false, "0", "0"));
            }
            Some(sign @ (b'-' | b'+')) => {
                let negative = *sign == b'-';
                i += 1;
                let h = take_digits(&mut i, 1, 2)?;
                let mut m = "0";
                if b.get(i) == Some(&b':') {
                    i += 1;
                    m = take_digits(&mut i, 2, 2)?;
                }
                zone = Some((negative, h, m));
            }
            _ => return None,
        }
        // Spaces between the seconds and nothing else do not make a timestamp.
        if i != b.len() || (zone.is_none() && text.ends_with([' ', '\t'])) {
            return None;
        }
        Some((year, month, day, hour, minute, second, fraction, zone))
    })();
    let Some((year, month, day, hour, minute, second, fraction, zone)) = parsed else {
        return Ok(None);
    };
    let date = date(year, month, day, span)?;
    let (h, mi, s): (u32, u32, u32) = (
        hour.parse().unwrap_or(99),
        minute.parse().unwrap_or(99),
        second.parse().unwrap_or(99),
    );
    if h > 23 || mi > 59 || s > 59 {
        return Err(error_at(span, format!("invalid timestamp: {text:?}")));
    }
    let mut out = format!("{date}T{h:02}:{mi:02}:{s:02}");
    let micro: String = fraction.chars().take(6).collect();
    let micro = format!("{micro:0<6}");
    if micro != "000000" {
        out.push('.');
        out.push_str(&micro);
    }
    if let Some((negative, zh, zm)) = zone {
        let (zh, zm): (i64, i64) = (zh.parse().unwrap_or(0), zm.parse().unwrap_or(0));
        let mut minutes = zh * 60 + zm;
        if negative {
            minutes = -minutes;
        }
        if minutes.abs() >= 24 * 60 {
            return Err(error_at(
                span,
                format!("invalid timestamp offset: {text:?}"),
            ));
        }
        let sign = if minutes < 0 { '-' } else { '+' };
        out.push_str(&format!(
            "{sign}{:02}:{:02}",
            minutes.abs() / 60,
            minutes.abs() % 60
        ));
    }
    Ok(Some(Scalar::Time(out)))
}

fn date(year: &str, month: &str, day: &str, span: (usize, usize)) -> Result<String, ReadError> {
    let (y, m, d): (u32, u32, u32) = (
        year.parse().unwrap_or(0),
        month.parse().unwrap_or(0),
        day.parse().unwrap_or(0),
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if y == 0 || d == 0 || d > days {
        return Err(error_at(
            span,
            format!("invalid date: {year}-{month}-{day}"),
        ));
    }
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(text: &str) -> Value {
        load(text).unwrap().unwrap()
    }

    /// YAML 1.1 plain scalars resolve as PyYAML resolves them.
    #[test]
    fn plain_scalars_resolve_as_pyyaml_resolves_them() {
        assert_eq!(
            read(
                "[yes, No, on, OFF, 0644, 1_000, '1_000', 1:30, 0x1F, 0b101, 1e3, 1.0e+3, .5, -.5, 1., 09, ~, '', 2001-12-14, 1.0e3]"
            ),
            json!([
                true,
                false,
                true,
                false,
                420,
                1000,
                "1_000",
                90,
                31,
                5,
                "1e3",
                1000.0,
                0.5,
                "-.5",
                1.0,
                "09",
                null,
                "",
                "2001-12-14",
                "1.0e3"
            ])
        );
    }

    /// Timestamps become Python's isoformat text; an impossible date is an error.
    #[test]
    fn timestamps_read_as_python_isoformat() {
        assert_eq!(
            read(
                "a: 2001-12-14t21:59:43.10-05:00\nb: 2001-12-14 21:59:43.1\nc: 2002-1-4T01:02:03Z\n"
            ),
            json!({"a": "2001-12-14T21:59:43.100000-05:00", "b": "2001-12-14T21:59:43.100000", "c": "2002-01-04T01:02:03+00:00"})
        );
        assert!(load("a: 2001-02-30\n").is_err());
    }

    /// Merge keys merge, own keys win; a duplicate key keeps the last value; 1 and true are
    /// the same key.
    #[test]
    fn merge_keys_duplicates_and_python_key_equality() {
        assert_eq!(
            read(
                "b: &b {x: 1, y: 2}\nc: &c {y: 5, z: 6}\nd:\n  <<: [*b, *c]\n  x: 3\ne: 1\ne: 2\n"
            ),
            json!({"b": {"x": 1, "y": 2}, "c": {"y": 5, "z": 6}, "d": {"x": 3, "y": 2, "z": 6}, "e": 2})
        );
        assert_eq!(
            read("{1: a, true: b, 1.0: x, 1.5: c}"),
            json!({"1": "x", "1.5": "c"})
        );
    }

    /// Explicit tags construct their type; values JSON cannot carry are refused as such.
    #[test]
    fn tags_and_unsupported_values() {
        assert_eq!(
            read("a: !!str 123\nb: !!int \"42\"\nc: !!float 1\nd: ! 12\n"),
            json!({"a": "123", "b": 42, "c": 1.0, "d": 12})
        );
        assert!(load("a: [&#39;x&#39;]\n").is_err());
        // PyYAML's scanner: no tab between tokens, a comment may follow a quoted string.
        assert!(load("a: x\ty\n").is_err());
        assert!(load("a:\n  - : b\n").is_err());
        assert!(load("{: b}").is_err());
        assert_eq!(read("? \n: b\n"), json!({"null": "b"}));
        assert!(load("a:\tx\n").is_err());
        assert_eq!(
            read("a: \"x\ty\"#c\nb: |\n  \tz\n"),
            json!({"a": "x\ty", "b": "\tz\n"})
        );
        assert_eq!(
            read("a: &x-1 [1]\nb: *x-1\nc: x &y *z\n"),
            json!({"a": [1], "b": [1], "c": "x &y *z"})
        );
        for text in [
            "a: .inf\n",
            "a: !!binary aGk=\n",
            "a: !!set {x}\n",
            "a: 100000000000000000000\n",
        ] {
            let err = load(text).unwrap_err();
            assert!(err.unsupported, "{text}: {err:?}");
        }
        assert!(!load("a: =\n").unwrap_err().unsupported);
        assert!(load("a: 1\n---\nb: 2\n").is_err());
    }

    /// A flow collection or quoted string continued on a line indented less than its key
    /// reads as PyYAML reads it; `|` and `>` cannot start a value inside `[ ]` or `{ }`.
    #[test]
    fn flow_continuations_and_block_indicators_in_flow_read_as_pyyaml() {
        assert_eq!(
            read(
                "list: [42\n, 6\n44,\n'a b',\n\"c\nd\"]\nm:\n  k: {a: 1,\nb: [x,\ny]}\n  t: \"one\ntwo\"\n"
            ),
            json!({"list": [42, "6 44", "a b", "c d"], "m": {"k": {"a": 1, "b": ["x", "y"]}, "t": "one two"}})
        );
        // A block scalar's lines are left as they are.
        assert_eq!(
            read("a: |\n  [x\nb: [1,\n2]\n"),
            json!({"a": "[x\n", "b": [1, 2]})
        );
        for text in ["on: {'x':|'yes'}\n", "a: [>x]\n", "a: [1, |]\n"] {
            let err = load(text).unwrap_err();
            assert!(
                err.message.contains("cannot start any token"),
                "{text}: {err:?}"
            );
        }
        assert_eq!(read("a: x|y\nb: '|'\n"), json!({"a": "x|y", "b": "|"}));
        // A key over two lines is no key in PyYAML, even once its lines are indented.
        for text in ["yes: {'MID\n': 1}\n", "a: {x\ny: 1}\n", "'a\n  b': 1\n"] {
            assert!(load(text).is_err(), "{text}");
        }
        assert_eq!(read("? 'a\n  b'\n: 1\n"), json!({"a b": 1}));
    }
}
