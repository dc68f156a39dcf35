//! Slices that keep Markup. Jinja2's Markup returns Markup from `m[1:3]`, so a slice of
//! escaped text still prints as `Markup('…')` inside a list and is not escaped again;
//! minijinja slices text itself with no hook to keep the mark. Each slice subscript of the
//! template source (`x[a:b]`, `x[a:b:c]`) is therefore compiled as a method call,
//! `x.__styrmin_slice__(a, b, c)`, which slices exactly as minijinja does and marks the
//! result safe when the text was. The rewrite keeps every line break, so line numbers in
//! errors are the template's own.

use std::borrow::Cow;
use std::sync::LazyLock;

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, Expression, Value};

/// The method name slices are compiled to.
pub const METHOD: &str = "__styrmin_slice__";

/// A plain environment whose only use is minijinja's own slicing of any value.
static SLICER_ENV: LazyLock<Environment<'static>> = LazyLock::new(Environment::new);
static SLICER: LazyLock<Expression<'static, 'static>> = LazyLock::new(|| {
    SLICER_ENV
        .compile_expression("v[a:b:c]")
        .expect("the slice expression compiles")
});

/// `value[start:stop:step]` as minijinja slices it, kept Markup when `value` is.
pub fn call(value: &Value, args: &[Value]) -> Result<Value, Error> {
    let arg = |i: usize| args.get(i).cloned().unwrap_or(Value::from(()));
    let sliced = SLICER.eval(minijinja::context! {
        v => value.clone(),
        a => arg(0),
        b => arg(1),
        c => arg(2),
    })?;
    if value.kind() == ValueKind::String && value.is_safe() {
        return Ok(Value::from_safe_string(
            sliced.as_str().unwrap_or_default().to_owned(),
        ));
    }
    Ok(sliced)
}

/// Words after which `[` opens a list literal, not a subscript.
const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "is",
    "if",
    "else",
    "elif",
    "for",
    "set",
    "with",
    "macro",
    "call",
    "filter",
    "import",
    "from",
    "as",
    "include",
    "extends",
    "print",
    "do",
    "recursive",
];

/// The template source with every slice subscript as a method call (see the module docs).
pub fn rewrite(source: &str) -> Cow<'_, str> {
    if !source.contains(':') || !source.contains('[') {
        return Cow::Borrowed(source);
    }
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len() + 32);
    let mut changed = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '{' && next == Some('#') {
            // A comment, copied as it is.
            let end = find(&chars, i + 2, &['#', '}']).map_or(chars.len(), |at| at + 2);
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        if c == '{' && matches!(next, Some('{' | '%')) {
            let end = code_end(&chars, i + 2);
            let code: String = chars[i + 2..end].iter().collect();
            let is_raw = next == Some('%')
                && code.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()) == "raw";
            out.push(c);
            out.push(next.unwrap_or_default());
            let rewritten = rewrite_code(&chars[i + 2..end]);
            changed |= rewritten != code;
            out.push_str(&rewritten);
            i = end;
            if is_raw {
                // Everything up to `{% endraw %}` is text.
                let mut j = i;
                loop {
                    match find(&chars, j, &['{', '%']) {
                        Some(at) => {
                            let tag_end = code_end(&chars, at + 2);
                            let tag: String = chars[at + 2..tag_end].iter().collect();
                            if tag.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace())
                                == "endraw"
                            {
                                out.extend(&chars[i..at]);
                                i = at;
                                break;
                            }
                            j = at + 2;
                        }
                        None => {
                            out.extend(&chars[i..]);
                            i = chars.len();
                            break;
                        }
                    }
                }
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(source)
    }
}

/// The index of the first `pattern` (two characters) at or after `from`.
fn find(chars: &[char], from: usize, pattern: &[char; 2]) -> Option<usize> {
    (from..chars.len().saturating_sub(1))
        .find(|&i| chars[i] == pattern[0] && chars[i + 1] == pattern[1])
}

/// The index where the code of a `{{ }}` or `{% %}` region starting at `from` ends (the
/// `}}` or `%}` closing it, outside strings and brackets), or the end of the source.
fn code_end(chars: &[char], from: usize) -> usize {
    let mut depth = 0usize;
    let mut i = from;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' | '"' => i = string_end(chars, i),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            '}' if depth > 0 => depth -= 1,
            '}' | '%' if chars.get(i + 1) == Some(&'}') => return i,
            _ => {}
        }
        i += 1;
    }
    chars.len()
}

/// The index of the quote closing the string literal that opens at `start`.
fn string_end(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return i,
            _ => i += 1,
        }
    }
    chars.len().saturating_sub(1)
}

/// The previous significant token of `code` before `at` opens a subscript when it ends a
/// value: a name that is not a keyword, a closing bracket or a string literal.
fn opens_subscript(code: &[char], at: usize) -> bool {
    let mut j = at;
    while j > 0 && code[j - 1].is_whitespace() {
        j -= 1;
    }
    let Some(&before) = j.checked_sub(1).and_then(|k| code.get(k)) else {
        return false;
    };
    if matches!(before, ')' | ']' | '}' | '\'' | '"') {
        return true;
    }
    if before.is_alphanumeric() || before == '_' {
        let mut start = j;
        while start > 0 && (code[start - 1].is_alphanumeric() || code[start - 1] == '_') {
            start -= 1;
        }
        let word: String = code[start..j].iter().collect();
        if word.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            return false;
        }
        return !KEYWORDS.contains(&word.as_str());
    }
    false
}

/// One region's code with its slice subscripts rewritten.
fn rewrite_code(code: &[char]) -> String {
    let mut out = String::with_capacity(code.len() + 16);
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        if c == '\'' || c == '"' {
            let end = string_end(code, i);
            out.extend(&code[i..=end.min(code.len() - 1)]);
            i = end + 1;
            continue;
        }
        if c == '[' && opens_subscript(code, i) {
            let close = matching_bracket(code, i);
            if let Some(close) = close {
                let parts = top_level_colon_split(&code[i + 1..close]);
                if (2..=3).contains(&parts.len()) {
                    out.push('.');
                    out.push_str(METHOD);
                    out.push('(');
                    for (n, part) in parts.iter().enumerate() {
                        if n > 0 {
                            out.push_str(", ");
                        }
                        let inner = rewrite_code(part);
                        if inner.trim().is_empty() {
                            // Keep the part's line breaks; an empty part is `none`.
                            out.push_str(&inner);
                            out.push_str("none");
                        } else {
                            out.push_str(&inner);
                        }
                    }
                    out.push(')');
                    i = close + 1;
                    continue;
                }
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The index of the `]` matching the `[` at `open`, outside strings and nested brackets.
fn matching_bracket(code: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < code.len() {
        match code[i] {
            '\'' | '"' => i = string_end(code, i),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return (code[i] == ']').then_some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `inner` split at its `:` outside strings and brackets.
fn top_level_colon_split(inner: &[char]) -> Vec<&[char]> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut i = 0;
    while i < inner.len() {
        match inner[i] {
            '\'' | '"' => i = string_end(inner, i),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&inner[start..]);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_subscripts_become_method_calls_and_nothing_else_changes() {
        assert_eq!(
            rewrite("a: {{ x[1:2] }} {{ 'ab'[::-1] }} {{ [1, 2][:1] }} {{ m['k'] }}"),
            "a: {{ x.__styrmin_slice__(1, 2) }} {{ 'ab'.__styrmin_slice__(none, none, -1) }} {{ [1, 2].__styrmin_slice__(none, 1) }} {{ m['k'] }}"
        );
        assert_eq!(
            rewrite("{% for i in [1, 2] %}{{ (x | e)[a[0:1][0]:] }}{% endfor %}"),
            "{% for i in [1, 2] %}{{ (x | e).__styrmin_slice__(a.__styrmin_slice__(0, 1)[0], none) }}{% endfor %}"
        );
        for unchanged in [
            "{# x[1:2] #} [1:2] {{ {'a': 1}['a'] }} {{ 'x[1:2]' }}",
            "{% raw %}{{ x[1:2] }}{% endraw %}",
            "{{ x if y in [1] else {'a': [2]} }}",
        ] {
            assert_eq!(rewrite(unchanged), unchanged);
        }
    }
}
