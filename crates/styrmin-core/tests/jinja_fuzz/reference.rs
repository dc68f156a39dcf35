//! The Python reference as one long-lived process: `jinja2-reference-render.py --serve`
//! renders with Jinja2 and reads the result with PyYAML's `safe_load`, one JSON line per case.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Map, Value};
use styrmin_core::render::RenderError;

pub struct Reference {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// What Python made of one case.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Jinja2 raised while compiling or rendering.
    TemplateError(String),
    /// Jinja2 rendered `text`; PyYAML read it as `values` (JSON form), or refused it.
    Rendered { text: String, values: Read },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    Values(Value),
    YamlError(String),
    /// A value JSON cannot carry (an infinite float, a set…): Styrmin must refuse it too.
    Unsupported(String),
}

impl Reference {
    pub fn start(repo: &Path) -> Reference {
        let script = repo.join("scripts/jinja2-reference-render.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("python3 is needed for the fuzzer ({e}); scripts/test.sh installs it")
            });
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Reference {
            child,
            stdin,
            stdout,
        }
    }

    /// Renders `template` with the Context written as JSON text (its map order is kept).
    pub fn render(&mut self, template: &str, context_json: &str) -> Answer {
        let request = format!(
            "{{\"template\": {}, \"context\": {context_json}}}\n",
            serde_json::to_string(template).expect("a string serialises")
        );
        self.stdin
            .write_all(request.as_bytes())
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("the reference process stopped ({e}); are jinja2 and PyYAML installed? scripts/test.sh installs them"));
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("the reference process answers");
        assert!(
            !line.is_empty(),
            "the reference process exited; are jinja2 and PyYAML installed? scripts/test.sh installs them"
        );
        let answer: Value = serde_json::from_str(&line).expect("the reference answers JSON");
        let field = |name: &str| answer.get(name).and_then(Value::as_str).map(str::to_owned);
        if let Some(error) = field("error") {
            return Answer::TemplateError(error);
        }
        let text = field("text").expect("a rendering has a text");
        let values = if let Some(values) = answer.get("values") {
            Read::Values(values.clone())
        } else if let Some(error) = field("yaml_error") {
            Read::YamlError(error)
        } else {
            Read::Unsupported(field("unsupported").unwrap_or_default())
        };
        Answer::Rendered { text, values }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        // Closing stdin ends the serve loop; wait so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How our reading of a rendered text compares with PyYAML's.
#[derive(Debug, PartialEq)]
pub enum Reading {
    /// The same values (floats compared by Python's exact repr).
    Same,
    /// Both readers refused the text as YAML.
    BothNotYaml,
    /// We refused a value docs/drivers.md lists as unsupported.
    Refused,
    Differs(String),
}

/// Compares PyYAML's reading of a text with ours.
pub fn compare_reading(expected: &Read, ours: &Result<Map<String, Value>, RenderError>) -> Reading {
    match (expected, ours) {
        (Read::Values(Value::Object(expected)), Ok(actual))
            if Value::Object(expected.clone()) == exact_floats(Value::Object(actual.clone())) =>
        {
            Reading::Same
        }
        (Read::Values(Value::Null), Ok(actual)) if actual.is_empty() => Reading::Same,
        (Read::Values(expected), Err(RenderError::NotMapping { .. }))
            if !expected.is_object() && !expected.is_null() =>
        {
            Reading::Same
        }
        (Read::YamlError(_), Err(RenderError::NotYaml { .. })) => Reading::BothNotYaml,
        (_, Err(e)) if is_documented_refusal(&e.to_string()) => Reading::Refused,
        (expected, actual) => Reading::Differs(format!(
            "the same text reads differently:\n  pyyaml: {expected:?}\n  ours:   {actual:?}"
        )),
    }
}

/// Our documented refusals say so in these words (docs/drivers.md lists them).
pub fn is_documented_refusal(message: &str) -> bool {
    message.contains("is not supported")
}

/// Our values in the reference's form: floats as `{"float": repr}` (Python's repr is exact,
/// where a JSON parser may round the last digit differently).
pub fn exact_floats(value: Value) -> Value {
    match value {
        Value::Number(n) if n.is_f64() => serde_json::json!({
            "float": styrmin_core::render::jinja::python_float(n.as_f64().unwrap_or_default())
        }),
        Value::Array(items) => Value::Array(items.into_iter().map(exact_floats).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, exact_floats(v))).collect())
        }
        other => other,
    }
}
