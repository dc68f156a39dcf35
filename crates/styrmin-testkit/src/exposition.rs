//! A strict reader of the Prometheus text exposition format (version 0.0.4) for tests:
//! every sample as (name, labels) → value. A malformed line, a sample whose family has no
//! `# TYPE`, or a series given twice is an error, so a test that reads a scrape also checks
//! that Prometheus could. Used by the server's and the binary's metrics tests.

use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Default)]
pub struct Exposition {
    samples: BTreeMap<(String, Labels), f64>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    /// The sample named `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .get(&(name.to_owned(), to_labels(labels)))
            .copied()
    }

    /// The sum of the samples named `name` whose labels include `labels` (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The family's declared type (`counter`, `gauge`, `histogram`…).
    pub fn type_of(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// Every label set the samples named `name` have.
    pub fn series(&self, name: &str) -> Vec<&Labels> {
        self.samples
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, l)| l)
            .collect()
    }
}

fn to_labels(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    for (number, line) in text.lines().enumerate() {
        let at = |message: String| format!("line {}: {message}: {line:?}", number + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            match words.next() {
                Some("TYPE") => {
                    let (Some(name), Some(kind), None) = (words.next(), words.next(), words.next())
                    else {
                        return Err(at("a TYPE line names a family and a type".into()));
                    };
                    check_name(name).map_err(at)?;
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind}")));
                    }
                    if out.types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(at(format!("{name} typed twice")));
                    }
                }
                Some("HELP") => {
                    check_name(words.next().unwrap_or_default()).map_err(at)?;
                }
                _ => {} // a plain comment
            }
            continue;
        }
        let (name, labels, rest) = sample(line).map_err(at)?;
        let mut fields = rest.split_whitespace();
        let value = fields
            .next()
            .ok_or_else(|| at("no value".into()))
            .and_then(|v| number_value(v).map_err(at))?;
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .map_err(|_| at(format!("bad timestamp {timestamp}")))?;
        }
        if fields.next().is_some() {
            return Err(at("text after the timestamp".into()));
        }
        let family = family_of(&name, &out.types)
            .ok_or_else(|| at(format!("no # TYPE before the first sample of {name}")))?;
        if out.types[&family] == "histogram"
            && name.ends_with("_bucket")
            && !labels.contains_key("le")
        {
            return Err(at("a bucket without le".into()));
        }
        if out.samples.insert((name.clone(), labels), value).is_some() {
            return Err(at(format!("series {name} given twice")));
        }
    }
    Ok(out)
}

/// The family a sample belongs to: its own name, or a histogram's or summary's without
/// the `_bucket`/`_sum`/`_count` suffix.
fn family_of(name: &str, types: &BTreeMap<String, String>) -> Option<String> {
    if types.contains_key(name) {
        return Some(name.to_owned());
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| {
            types
                .get(*base)
                .is_some_and(|t| t == "histogram" || t == "summary")
        })
        .map(str::to_owned)
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("`{name}` is not a metric name"))
    }
}

fn number_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("`{text}` is not a number")),
    }
}

/// `name{k="v",…} rest` → (name, labels, rest).
fn sample(line: &str) -> Result<(String, Labels, &str), String> {
    let end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample needs a value")?;
    let name = &line[..end];
    check_name(name)?;
    let mut labels = Labels::new();
    let mut rest = &line[end..];
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        loop {
            // A label name, or the closing brace (also after a trailing comma).
            let start = match chars.peek() {
                Some((i, '}')) => {
                    rest = &inner[i + 1..];
                    break;
                }
                Some((i, _)) => *i,
                None => return Err("unclosed label set".into()),
            };
            let eq = inner[start..]
                .find('=')
                .map(|i| start + i)
                .ok_or("a label without =")?;
            let key = &inner[start..eq];
            check_name(key).map_err(|_| format!("`{key}` is not a label name"))?;
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {key}'s value is not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape \\{other:?} in label {key}")),
                    },
                    Some(c) => value.push(c),
                    None => return Err(format!("label {key}'s value is not closed")),
                }
            }
            if labels.insert(key.to_owned(), value).is_some() {
                return Err(format!("label {key} given twice"));
            }
            match chars.next().map(|(_, c)| c) {
                Some(',') => {}
                Some('}') => {
                    let close = chars.peek().map(|(i, _)| *i).unwrap_or(inner.len());
                    rest = &inner[close..];
                    break;
                }
                _ => return Err(format!("expected , or }} after label {key}")),
            }
        }
    }
    if !rest.starts_with(char::is_whitespace) {
        return Err("no space before the value".into());
    }
    Ok((name.to_owned(), labels, rest))
}
