//! Rendering a driver's `values.j2.yml` with a Context into Helm values.

mod context_value;
pub mod jinja;

use minijinja::Environment;
use serde_json::{Map, Value};

pub const VALUES_FILE: &str = "values.j2.yml";
const TEMPLATE_NAME: &str = VALUES_FILE;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    #[error("{VALUES_FILE}:{line}: template syntax error: {message}")]
    Syntax { line: usize, message: String },
    #[error("{VALUES_FILE}:{line}: {message}")]
    Template { line: usize, message: String },
    #[error(
        "the rendered {VALUES_FILE} is not valid YAML at line {line}, column {column}: {message}\n  {line} | {excerpt}"
    )]
    NotYaml {
        line: usize,
        column: usize,
        message: String,
        /// The rendered line the YAML parser stopped at.
        excerpt: String,
    },
    #[error("the rendered {VALUES_FILE} must be a YAML mapping of Helm values, but it is {found}")]
    NotMapping { found: &'static str },
    /// A value YAML 1.1 reads but JSON cannot carry (an infinite float, `!!binary`…).
    #[error("the rendered {VALUES_FILE} at line {line}: {message}\n  {line} | {excerpt}")]
    ValuesUnsupported {
        line: usize,
        message: String,
        excerpt: String,
    },
}

/// Helm values: the rendered text and the mapping it parses to.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedValues {
    pub text: String,
    pub values: Map<String, Value>,
}

/// A Context in the template engine's own value form.
pub struct PreparedContext(minijinja::Value);

impl PreparedContext {
    pub fn new(context: &Value) -> PreparedContext {
        PreparedContext(context_value::from_json(context))
    }

    /// A Context read from JSON (or YAML) text with every map in the order the text writes
    /// it, as Python's `json.load` keeps it: templates that iterate a map see that order.
    /// JSON is read exactly as `json.load` reads it (floats included); other text as YAML.
    pub fn from_text(text: &str) -> Result<PreparedContext, String> {
        match context_value::from_json_text(text) {
            Ok(value) => Ok(PreparedContext(value)),
            Err(json_error) => serde_yaml_ng::from_str::<minijinja::Value>(text)
                .map(PreparedContext)
                .map_err(|yaml_error| {
                    format!("neither JSON ({json_error}) nor YAML ({yaml_error})")
                }),
        }
    }
}

/// A compiled values template, ready to render many contexts.
pub struct ValuesTemplate {
    env: Environment<'static>,
    /// What of the Context the template reads; only that is converted per render.
    reads: context_value::Reads,
}

impl ValuesTemplate {
    pub fn compile(source: &str) -> Result<ValuesTemplate, RenderError> {
        let mut env = jinja::environment();
        // Slices compile as method calls that keep Markup (see `jinja::slices`).
        env.add_template_owned(TEMPLATE_NAME, jinja::slices::rewrite(source).into_owned())
            .map_err(|e| RenderError::Syntax {
                line: e.line().unwrap_or(0),
                message: error_message(&e),
            })?;
        if let Some(refusal) = jinja::refuse::check(source) {
            return Err(RenderError::Syntax {
                line: refusal.line,
                message: refusal.message,
            });
        }
        let reads = context_value::Reads::of_paths(
            env.get_template(TEMPLATE_NAME)
                .expect("the template was just added")
                .undeclared_variables(true),
        );
        Ok(ValuesTemplate { env, reads })
    }

    /// Bounds the work one render may do: instructions run and data created (about 64
    /// bytes a unit, see minijinja's fuel). A render past it fails with "engine ran out of
    /// fuel", so a template cannot loop or allocate without end.
    pub fn limit_fuel(&mut self, fuel: u64) {
        self.env.set_fuel(Some(fuel));
    }

    /// The Context in engine form, limited to what this template reads.
    pub fn prepare(&self, context: &Value) -> PreparedContext {
        PreparedContext(self.reads.convert(context))
    }

    /// The rendered text, exactly as Jinja2 would produce it.
    pub fn render_text(&self, context: &Value) -> Result<String, RenderError> {
        self.render_prepared(&self.prepare(context))
    }

    /// Renders a Context converted once, for callers that render it more than once.
    pub fn render_prepared(&self, context: &PreparedContext) -> Result<String, RenderError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .expect("the template was added at compile time");
        template
            .render(context.0.clone())
            .map_err(|e| RenderError::Template {
                line: e.line().unwrap_or(0),
                message: error_message(&e),
            })
    }

    /// Renders and reads a Context converted once (its map order kept, see
    /// `PreparedContext::from_text`).
    pub fn render_prepared_values(
        &self,
        context: &PreparedContext,
    ) -> Result<RenderedValues, RenderError> {
        let text = self.render_prepared(context)?;
        let values = parse_values(&text)?;
        Ok(RenderedValues { text, values })
    }

    pub fn render(&self, context: &Value) -> Result<RenderedValues, RenderError> {
        let text = self.render_text(context)?;
        let values = parse_values(&text)?;
        Ok(RenderedValues { text, values })
    }

    /// Names the template reads from the context, as dotted paths (`parameters.replicas`).
    pub fn referenced_paths(&self) -> Vec<String> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .expect("the template was added at compile time");
        // Globals (`range`, `namespace`, `dict`, `joiner`…) and names the template sets
        // inside a block are not read from the Context.
        let globals: Vec<&str> = self.env.globals().map(|(name, _)| name).collect();
        let assigned = jinja::refuse::assigned_names(template.source());
        let mut names: Vec<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|path| {
                let root = path.split('.').next().unwrap_or_default();
                !globals.contains(&root)
                    && !matches!(
                        root,
                        "range" | "namespace" | "dict" | "lipsum" | "cycler" | "joiner"
                    )
                    && !assigned.iter().any(|n| n == root)
            })
            .collect();
        names.sort();
        names
    }
}

/// Renders a driver's values: an absent template yields empty values.
pub fn render_values(
    template: Option<&str>,
    context: &Value,
) -> Result<RenderedValues, RenderError> {
    match template {
        Some(source) => ValuesTemplate::compile(source)?.render(context),
        None => Ok(RenderedValues {
            text: String::new(),
            values: Map::new(),
        }),
    }
}

fn error_message(e: &minijinja::Error) -> String {
    let mut message = match e.detail() {
        Some(detail) if jinja::is_integer_overflow(detail) => format!(
            "integer arithmetic beyond 128 bits is not supported (Python's integers have no limit; see docs/drivers.md): {detail}"
        ),
        Some(detail) => format!("{}: {detail}", e.kind()),
        None => e.kind().to_string(),
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// Parses rendered text as a YAML mapping, with YAML 1.1 rules as PyYAML's `safe_load`
/// reads it (`crate::yaml::yaml11`). An empty document is an empty mapping.
pub fn parse_values(text: &str) -> Result<Map<String, Value>, RenderError> {
    let parsed = crate::yaml::yaml11::load(text).or_else(|e| {
        // Jinja2's tojson writes characters beyond U+FFFF (emoji) as UTF-16 surrogate pairs,
        // `\ud83d\ude80`, which YAML parsers refuse (PyYAML keeps the two halves, which
        // JSON joins again); such a text is read with the pairs joined.
        match join_surrogate_escapes(text) {
            Some(joined) if !e.unsupported => crate::yaml::yaml11::load(&joined),
            _ => Err(e),
        }
    });
    let excerpt = |line: usize| {
        text.lines()
            .nth(line.saturating_sub(1))
            .unwrap_or_default()
            .to_owned()
    };
    let yaml = parsed.map_err(|e| {
        if e.unsupported {
            RenderError::ValuesUnsupported {
                line: e.line,
                message: e.message.clone(),
                excerpt: excerpt(e.line),
            }
        } else {
            RenderError::NotYaml {
                line: e.line,
                column: e.column,
                message: e.message.clone(),
                excerpt: excerpt(e.line),
            }
        }
    })?;
    match yaml {
        Some(Value::Object(map)) => Ok(map),
        None | Some(Value::Null) => Ok(Map::new()),
        Some(other) => Err(RenderError::NotMapping {
            found: match other {
                Value::Array(_) => "a list",
                Value::String(_) => "a string",
                Value::Bool(_) => "a boolean",
                _ => "a number",
            },
        }),
    }
}

/// Rewrites every escaped surrogate pair `\uD83D\uDE80` as the one escape `\U0001F680`;
/// `None` when there is none.
fn join_surrogate_escapes(text: &str) -> Option<String> {
    fn hex_at(text: &str, at: usize) -> Option<u32> {
        let digits = text.get(at..at + 4)?;
        u32::from_str_radix(digits, 16).ok()
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut changed = false;
    let mut i = 0;
    while i + 12 <= text.len() {
        let escaped = bytes[i] == b'\\'
            && bytes[i + 1] == b'u'
            && bytes[i + 6] == b'\\'
            && bytes[i + 7] == b'u';
        // After an even run of backslashes, this backslash starts an escape.
        let starts_escape = bytes[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0;
        if escaped
            && starts_escape
            && let (Some(high @ 0xD800..=0xDBFF), Some(low @ 0xDC00..=0xDFFF)) =
                (hex_at(text, i + 2), hex_at(text, i + 8))
        {
            let code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            out.push_str(&text[copied..i]);
            out.push_str(&format!("\\U{code:08X}"));
            i += 12;
            copied = i;
            changed = true;
            continue;
        }
        i += 1;
    }
    changed.then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

/// YAML → JSON; non-string keys become their text, as Helm's own conversion does.
pub fn yaml_to_json(yaml: serde_yaml_ng::Value) -> Value {
    use serde_yaml_ng::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s,
                        Y::Bool(b) => b.to_string(),
                        Y::Number(n) => n.to_string(),
                        Y::Null => "null".to_owned(),
                        other => serde_yaml_ng::to_string(&other)
                            .unwrap_or_default()
                            .trim()
                            .to_owned(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => yaml_to_json(tagged.value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_to_a_mapping_of_values() {
        let template = ValuesTemplate::compile(
            "replicas: {{ parameters.replicas }}\nname: {{ app.name | tojson }}\n",
        )
        .unwrap();
        let rendered = template
            .render(&json!({"parameters": {"replicas": 3}, "app": {"name": "x"}}))
            .unwrap();
        assert_eq!(
            Value::Object(rendered.values),
            json!({"replicas": 3, "name": "x"})
        );
        assert_eq!(rendered.text, "replicas: 3\nname: \"x\"");
    }

    #[test]
    fn syntax_errors_name_the_template_line() {
        let err = ValuesTemplate::compile("a: 1\nb: {{ oops \n")
            .err()
            .unwrap();
        assert!(
            matches!(err, RenderError::Syntax { line: 2, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn output_that_is_not_yaml_shows_the_rendered_line() {
        let err =
            render_values(Some("a: 1\nb: [{{ x }}\nc: 2\n"), &json!({"x": "oops"})).unwrap_err();
        let RenderError::NotYaml { excerpt, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(err.to_string().contains("is not valid YAML"), "{err}");
        assert!(!excerpt.is_empty());
    }

    #[test]
    fn emoji_written_by_tojson_as_surrogate_pairs_parse_to_the_character() {
        let template = "a: {{ s | tojson }}\nb: \"\\\\ud83d\\\\ude80\"\n";
        let rendered = render_values(Some(template), &json!({"s": "go 🚀!"})).unwrap();
        assert_eq!(
            rendered.text,
            "a: \"go \\ud83d\\ude80!\"\nb: \"\\\\ud83d\\\\ude80\""
        );
        // The escaped backslash stays a literal backslash: only real escapes are joined.
        assert_eq!(
            Value::Object(rendered.values),
            json!({"a": "go 🚀!", "b": "\\ud83d\\ude80"})
        );
    }

    #[test]
    fn output_must_be_a_mapping() {
        let err = render_values(Some("- a\n- b\n"), &json!({})).unwrap_err();
        assert_eq!(err, RenderError::NotMapping { found: "a list" });
        assert_eq!(
            render_values(Some("# nothing\n"), &json!({}))
                .unwrap()
                .values,
            Map::new()
        );
        assert_eq!(render_values(None, &json!({})).unwrap().values, Map::new());
    }

    #[test]
    fn errors_while_rendering_name_the_line() {
        let err = render_values(Some("a: 1\nb: {{ missing.deeper }}\n"), &json!({})).unwrap_err();
        assert!(
            matches!(err, RenderError::Template { line: 2, .. }),
            "{err:?}"
        );
    }

    /// Globals and names set inside a block are not Context reads (no false lint warning).
    #[test]
    fn referenced_paths_leave_out_globals_and_block_scoped_sets() {
        let template = ValuesTemplate::compile(
            "{% if app.x %}{% set y = 1 %}{% endif %}{{ y }}{{ range(2) | list }}{{ namespace(a=1).a }}{{ dict(a=1) }}{{ joiner()() }}{{ cycler(1).next() }}{{ parameters.p }}",
        )
        .unwrap();
        assert_eq!(template.referenced_paths(), vec!["app.x", "parameters.p"]);
    }

    #[test]
    fn referenced_paths_list_what_the_template_reads() {
        let template = ValuesTemplate::compile(
            "{% set x = 1 %}{{ parameters.replicas }}{{ app.version }}{{ x }}",
        )
        .unwrap();
        assert_eq!(
            template.referenced_paths(),
            vec!["app.version", "parameters.replicas"]
        );
    }
}
