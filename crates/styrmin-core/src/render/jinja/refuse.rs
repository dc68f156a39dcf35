//! Constructs minijinja compiles but cannot render as Jinja2 does, found in the template
//! source before rendering so the author gets an error naming the construct and its line
//! rather than a silently different output:
//! - a macro's `varargs` or `kwargs` (minijinja macros take declared arguments only);
//! - a macro argument default that reads an earlier argument (`b=a`): minijinja evaluates
//!   defaults outside the call;
//! - a tuple literal `(a, b)` anywhere but after `in`: minijinja makes it a list, which
//!   prints as `[a, b]` where Python prints `(a, b)`.

#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    Str,
    Number,
    Punct(char),
    Other,
}

/// Names the template assigns anywhere (`set`, `for`, `macro`, `import … as`), block-scoped
/// or not: Jinja2 keeps a `{% set %}` made inside an `{% if %}` after the block, so such a
/// name is the template's own, not a Context variable.
pub fn assigned_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (_, code) in code_regions(source) {
        let tokens = tokenize(&code);
        let targets_end = match tokens.first() {
            Some(Token::Name(k)) if k == "set" || k == "for" => tokens
                .iter()
                .position(|t| *t == Token::Punct('=') || is_name(Some(t), "in"))
                .unwrap_or(tokens.len()),
            Some(Token::Name(k)) if k == "macro" => 2.min(tokens.len()),
            _ => {
                // `import 'x' as name`, `from 'x' import a, b as c`
                if let Some(at) = tokens.iter().position(|t| is_name(Some(t), "as"))
                    && let Some(Token::Name(n)) = tokens.get(at + 1)
                {
                    names.push(n.clone());
                }
                continue;
            }
        };
        let mut after_dot = false;
        for token in &tokens[1..targets_end] {
            match token {
                Token::Name(n) if !after_dot => names.push(n.clone()),
                _ => {}
            }
            after_dot = *token == Token::Punct('.');
        }
    }
    names
}

/// The first unsupported construct of `source`, if any.
pub fn check(source: &str) -> Option<Refusal> {
    for (line, code) in code_regions(source) {
        let tokens = tokenize(&code);
        if let Some(message) = check_tokens(&tokens) {
            return Some(Refusal { line, message });
        }
    }
    None
}

/// The code inside `{{ }}` and `{% %}`, with the line each starts on; comments and
/// `{% raw %}` blocks are skipped.
fn code_regions(source: &str) -> Vec<(usize, String)> {
    let mut regions = Vec::new();
    let mut rest = source;
    let mut consumed = 0;
    let line_of = |offset: usize| source[..offset].matches('\n').count() + 1;
    while let Some(at) = rest.find('{') {
        let after = &rest[at..];
        let close = if after.starts_with("{{") {
            "}}"
        } else if after.starts_with("{%") {
            "%}"
        } else if after.starts_with("{#") {
            "#}"
        } else {
            consumed += at + 1;
            rest = &rest[at + 1..];
            continue;
        };
        let Some(end) = after[2..].find(close) else {
            break;
        };
        let inner = &after[2..2 + end];
        let start = consumed + at;
        consumed += at + 2 + end + 2;
        rest = &rest[at + 2 + end + 2..];
        if close == "#}" {
            continue;
        }
        let code = inner.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        if close == "%}" && code == "raw" {
            match rest.find("endraw") {
                Some(skip) => {
                    consumed += skip + 6;
                    rest = &rest[skip + 6..];
                }
                None => break,
            }
            continue;
        }
        regions.push((line_of(start), code.to_owned()));
    }
    regions
}

fn tokenize(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Name(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
            tokens.push(Token::Number);
        } else if c == '\'' || c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            tokens.push(Token::Str);
        } else if "()[]{},.=|".contains(c) {
            tokens.push(Token::Punct(c));
            i += 1;
        } else {
            tokens.push(Token::Other);
            i += 1;
        }
    }
    tokens
}

fn is_name(token: Option<&Token>, name: &str) -> bool {
    matches!(token, Some(Token::Name(n)) if n == name)
}

fn check_tokens(tokens: &[Token]) -> Option<String> {
    // A `for` target may unpack with parentheses: `for a, (b, c) in …`.
    // A loop that unpacks each item (`for a, b in [(1, 2)]`) never prints the tuples.
    let first_code = if is_name(tokens.first(), "for") {
        let in_at = tokens
            .iter()
            .position(|t| is_name(Some(t), "in"))
            .unwrap_or(0);
        if tokens[..in_at].contains(&Token::Punct(',')) {
            tokens.len()
        } else {
            in_at
        }
    } else {
        0
    };
    for (i, token) in tokens.iter().enumerate() {
        if i < first_code {
            continue;
        }
        let after_dot = i > 0 && tokens[i - 1] == Token::Punct('.');
        if let Token::Name(name) = token
            && (name == "varargs" || name == "kwargs")
            && !after_dot
        {
            return Some(format!(
                "a macro's `{name}` is not supported: declare every argument the macro takes"
            ));
        }
        if *token == Token::Punct('(')
            && opens_group(tokens, i)
            && has_top_level_comma(tokens, i)
            && !is_name(i.checked_sub(1).and_then(|p| tokens.get(p)), "in")
        {
            return Some(
                "a tuple literal `(a, b)` is not supported outside `in (…)`: write a list `[a, b]`"
                    .into(),
            );
        }
    }
    if is_name(tokens.first(), "macro") {
        return check_macro_defaults(tokens);
    }
    None
}

/// A `(` that groups rather than calls: not after a name, `)` or `]`, nor a keyword
/// operator.
fn opens_group(tokens: &[Token], at: usize) -> bool {
    match at.checked_sub(1).map(|p| &tokens[p]) {
        None => true,
        Some(Token::Name(n)) => matches!(
            n.as_str(),
            "in" | "and" | "or" | "not" | "if" | "else" | "is" | "elif" | "set" | "for" | "return"
        ),
        Some(Token::Punct(')' | ']')) | Some(Token::Str) => false,
        _ => true,
    }
}

fn has_top_level_comma(tokens: &[Token], open: usize) -> bool {
    let mut depth = 0;
    for token in &tokens[open..] {
        match token {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return false;
                }
            }
            Token::Punct(',') if depth == 1 => return true,
            _ => {}
        }
    }
    false
}

/// `macro name(a, b=a)`: a default reading an earlier argument.
fn check_macro_defaults(tokens: &[Token]) -> Option<String> {
    let open = tokens.iter().position(|t| *t == Token::Punct('('))?;
    let mut params: Vec<String> = Vec::new();
    let mut depth = 0;
    let mut in_default = false;
    let mut expecting_name = true;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Punct('(' | '[' | '{') => depth += 1,
            Token::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Token::Punct(',') if depth == 1 => {
                in_default = false;
                expecting_name = true;
            }
            Token::Punct('=') if depth == 1 => in_default = true,
            Token::Name(name) if depth >= 1 && in_default => {
                let after_dot = tokens[i - 1] == Token::Punct('.');
                if !after_dot && params.contains(name) {
                    return Some(format!(
                        "a macro argument default that reads the earlier argument `{name}` is not supported: give it a constant default and use `{name}` in the body"
                    ));
                }
            }
            Token::Name(name) if depth == 1 && expecting_name => {
                params.push(name.clone());
                expecting_name = false;
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each refused construct is found with its line; the allowed forms are not.
    /// Names set inside blocks, loop targets and macros are the template's own.
    #[test]
    fn assigned_names_include_block_scoped_sets() {
        let names = assigned_names(
            "{% if a %}{% set x = 1 %}{% endif %}{% for k, v in m.items() %}{% endfor %}{% macro mac(p) %}{% endmacro %}{% set ns.n = 2 %}",
        );
        assert_eq!(names, vec!["x", "k", "v", "mac", "ns"]);
    }

    #[test]
    fn refuses_what_minijinja_renders_differently() {
        let refused = [
            (
                "a: 1\n{% macro m(a) %}{{ varargs }}{% endmacro %}",
                2,
                "varargs",
            ),
            (
                "{% macro m(a, b=a) %}{{ b }}{% endmacro %}",
                1,
                "earlier argument `a`",
            ),
            ("x: 1\ny: 2\nz: {{ (1, 2) }}", 3, "tuple"),
        ];
        for (source, line, words) in refused {
            let refusal = check(source).unwrap_or_else(|| panic!("{source}"));
            assert_eq!(refusal.line, line, "{source}");
            assert!(refusal.message.contains(words), "{refusal:?}");
        }
        for allowed in [
            "{% for x in ('a', 'b') %}{{ x }}{% endfor %}{{ 'a' in ('a', 'b') }}",
            "{% for a, (b, c) in [[1, (2, 3)], (4, (5, 6))] %}{{ a }}{% endfor %}",
            "{{ f(1, 2) }}{{ d.get('a', 1) }}{{ (a + b) * 2 }}{{ x.kwargs }}",
            "{% macro m(a, b=c.a) %}{% endmacro %}{# (1, 2) varargs #}{% raw %}{{ (1, 2) }}{% endraw %}",
            "{{ 'varargs (1, 2)' }}",
        ] {
            assert_eq!(check(allowed), None, "{allowed}");
        }
    }
}
