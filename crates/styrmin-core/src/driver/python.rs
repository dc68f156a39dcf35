//! Finds the top-level functions of `actions.py` without running Python: validation must
//! not execute driver code, only check that every `actions.py::fn` names a real function.

use std::collections::BTreeMap;

/// Top-level function names and the line each is defined on (1-based).
pub fn top_level_functions(source: &str) -> BTreeMap<String, u32> {
    let mut functions = BTreeMap::new();
    let mut open_quote: Option<&str> = None;
    for (i, line) in source.lines().enumerate() {
        let mut rest = line;
        if let Some(quote) = open_quote {
            match rest.find(quote) {
                Some(end) => rest = &rest[end + 3..],
                None => continue,
            }
        } else if let Some(name) = function_name(line) {
            functions.insert(name.to_owned(), i as u32 + 1);
        }
        open_quote = unterminated_triple_quote(rest);
    }
    functions
}

fn function_name(line: &str) -> Option<&str> {
    let rest = line
        .strip_prefix("async def ")
        .or_else(|| line.strip_prefix("def "))?
        .trim_start();
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    rest[end..]
        .trim_start()
        .starts_with('(')
        .then(|| &rest[..end])
}

/// The triple quote left open at the end of `line`, if any.
fn unterminated_triple_quote(line: &str) -> Option<&'static str> {
    let mut open: Option<&'static str> = None;
    let mut rest = line;
    loop {
        match open {
            None => {
                let comment = rest.find('#').unwrap_or(rest.len());
                let next = ["\"\"\"", "'''"]
                    .into_iter()
                    .filter_map(|q| rest[..comment].find(q).map(|at| (at, q)))
                    .min_by_key(|(at, _)| *at);
                let (at, q) = next?;
                open = Some(q);
                rest = &rest[at + 3..];
            }
            Some(q) => match rest.find(q) {
                Some(at) => {
                    rest = &rest[at + 3..];
                    open = None;
                }
                None => return open,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sync_and_async_top_level_functions_with_lines() {
        let src = "import x\n\n@flow\nasync def migrate(deployment_id: str):\n    def inner():\n        pass\n\ndef plain (a):\n    pass\n";
        let found = top_level_functions(src);
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec![("migrate".to_owned(), 4), ("plain".to_owned(), 8)]
        );
    }

    #[test]
    fn ignores_definitions_inside_docstrings() {
        let src = "\"\"\"Module doc.\ndef not_a_function():\n\"\"\"\ndef real():\n    '''one-line''' \ndef also_real(): pass\n";
        let found = top_level_functions(src);
        assert_eq!(found.keys().collect::<Vec<_>>(), vec!["also_real", "real"]);
    }
}
