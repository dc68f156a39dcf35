//! Parameter values: type-checked against their declaration, defaults applied. Values come
//! from JSON/YAML (typed) or from the command line (`-p replicas=3`, always strings), so
//! strings that spell a value of the declared kind are accepted.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::diagnostics::did_you_mean;
use crate::driver::{Parameter, ParameterKind};
use crate::field_error::{FieldError, FieldErrors};

/// Converts `value` to the declared kind, or says why it does not fit.
pub fn coerce(param: &Parameter, value: &Value) -> Result<Value, String> {
    match param.kind {
        ParameterKind::String => match value {
            Value::String(_) => Ok(value.clone()),
            Value::Number(n) => Ok(Value::String(n.to_string())),
            other => Err(format!("expected a string, found {}", describe(other))),
        },
        ParameterKind::Integer => match value {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(value.clone()),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("expected an integer, found \"{s}\"")),
            other => Err(format!("expected an integer, found {}", describe(other))),
        },
        ParameterKind::Boolean => match value {
            Value::Bool(_) => Ok(value.clone()),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                _ => Err(format!("expected true or false, found \"{s}\"")),
            },
            other => Err(format!("expected true or false, found {}", describe(other))),
        },
        ParameterKind::Secret => secret_ref(value).map(|r| r.to_value()),
        ParameterKind::Enum => param
            .values
            .iter()
            .find(|allowed| *allowed == value || spelled(allowed) == spelled(value))
            .cloned()
            .ok_or_else(|| {
                let allowed: Vec<String> = param.values.iter().map(spelled).collect();
                format!("{} is not one of: {}", describe(value), allowed.join(", "))
            }),
    }
}

/// What a `secret` parameter holds in the Context: the Secret (in the deployment's
/// namespace) and key that hold the value, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}

impl SecretRef {
    /// `{"secretRef": {"name": …, "key": …}}`, as templates read it.
    pub fn to_value(&self) -> Value {
        serde_json::json!({"secretRef": {"name": self.name, "key": self.key}})
    }
}

/// A Secret's data key: what Kubernetes allows.
pub fn secret_key_problem(key: &str) -> Option<String> {
    if key.is_empty() || key.len() > 253 {
        return Some("must be 1 to 253 characters".into());
    }
    (!key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    .then(|| format!("`{key}` may contain only letters, digits, `-`, `_` and `.`"))
}

/// Reads `{secretRef: {name, key}}`; anything else (a value in plain text above all) is
/// refused, saying how a secret is given.
pub fn secret_ref(value: &Value) -> Result<SecretRef, String> {
    const HOW: &str = "a secret parameter is never given in plain text: set its value with secretParameters (styrminctl: -p NAME=@secret:VALUE or --secret-file NAME=PATH), or refer to an existing Secret with {secretRef: {name, key}}";
    let Some(reference) = value
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get("secretRef"))
        .and_then(Value::as_object)
    else {
        return Err(HOW.into());
    };
    let text = |field: &str| reference.get(field).and_then(Value::as_str).unwrap_or("");
    let (name, key) = (text("name"), text("key"));
    if reference.len() != 2 {
        return Err("secretRef takes exactly `name` and `key`".into());
    }
    if let Some(problem) = crate::naming::dns1123_subdomain_problem(name) {
        return Err(format!("secretRef.name `{name}` {problem}"));
    }
    if let Some(problem) = secret_key_problem(key) {
        return Err(format!("secretRef.key {problem}"));
    }
    Ok(SecretRef {
        name: name.to_owned(),
        key: key.to_owned(),
    })
}

/// A value as a person writes it: strings bare, anything else as JSON.
pub fn spelled(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn check_value(param: &Parameter, value: &Value) -> Result<(), String> {
    coerce(param, value).map(|_| ())
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing (null)".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a mapping".into(),
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// Every declared parameter with its value: supplied, else default. Unknown names, missing
/// required ones and wrong types are all reported together.
pub fn resolve(
    declared: &[Parameter],
    supplied: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>, FieldErrors> {
    let mut errors = Vec::new();
    for name in supplied.keys() {
        if !declared.iter().any(|p| &p.name == name) {
            let names = declared.iter().map(|p| p.name.as_str());
            let hint = match did_you_mean(name, names) {
                Some(known) => format!("; did you mean `{known}`?"),
                None => String::new(),
            };
            errors.push(FieldError::new(
                format!("parameters.{name}"),
                format!("the driver declares no parameter `{name}`{hint}"),
            ));
        }
    }
    let mut resolved = BTreeMap::new();
    for param in declared {
        let field = format!("parameters.{}", param.name);
        let value = match (supplied.get(&param.name), &param.default) {
            (Some(v), _) => v,
            (None, Some(default)) => default,
            (None, None) => {
                errors.push(FieldError::new(
                    field,
                    "required: the driver gives no default",
                ));
                continue;
            }
        };
        match coerce(param, value) {
            Ok(v) => {
                resolved.insert(param.name.clone(), v);
            }
            Err(message) => errors.push(FieldError::new(field, message)),
        }
    }
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(FieldErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param(name: &str, kind: ParameterKind, default: Option<Value>) -> Parameter {
        Parameter {
            name: name.into(),
            label: None,
            description: None,
            kind,
            values: if kind == ParameterKind::Enum {
                vec![json!("debug"), json!("info")]
            } else {
                vec![]
            },
            default,
        }
    }

    fn declared() -> Vec<Parameter> {
        vec![
            param("replicas", ParameterKind::Integer, Some(json!(2))),
            param("docs", ParameterKind::Boolean, Some(json!(false))),
            param("level", ParameterKind::Enum, Some(json!("info"))),
            param("email", ParameterKind::String, None),
        ]
    }

    #[test]
    fn defaults_apply_and_command_line_strings_are_typed() {
        let supplied = BTreeMap::from([
            ("email".to_owned(), json!("ops@example.com")),
            ("replicas".to_owned(), json!("3")),
            ("docs".to_owned(), json!("TRUE")),
        ]);
        let resolved = resolve(&declared(), &supplied).unwrap();
        assert_eq!(
            json!(resolved),
            json!({"replicas": 3, "docs": true, "level": "info", "email": "ops@example.com"})
        );
    }

    #[test]
    fn every_wrong_value_is_reported_with_its_field() {
        let supplied = BTreeMap::from([
            ("replicas".to_owned(), json!("two")),
            ("level".to_owned(), json!("loud")),
            ("replics".to_owned(), json!(1)),
        ]);
        let errors = resolve(&declared(), &supplied).unwrap_err().to_string();
        assert_eq!(
            errors,
            "parameters.replics: the driver declares no parameter `replics`; did you mean `replicas`?\n\
             parameters.replicas: expected an integer, found \"two\"\n\
             parameters.level: \"loud\" is not one of: debug, info\n\
             parameters.email: required: the driver gives no default"
        );
    }

    /// A secret parameter takes only a reference to a Secret: a plain value is refused with
    /// a message that says how to give one and does not repeat it; malformed references
    /// name what is wrong.
    #[test]
    fn secret_parameters_take_references_never_values() {
        let p = param("password", ParameterKind::Secret, None);
        let reference = json!({"secretRef": {"name": "shop-secrets-1a2b3c4d", "key": "password"}});
        assert_eq!(coerce(&p, &reference).unwrap(), reference);
        let plain = coerce(&p, &json!("hunter2")).unwrap_err();
        assert!(
            plain.contains("secretParameters") && !plain.contains("hunter2"),
            "{plain}"
        );
        for (bad, says) in [
            (
                json!({"secretRef": {"name": "Bad_Name", "key": "k"}}),
                "secretRef.name",
            ),
            (
                json!({"secretRef": {"name": "ok", "key": "a/b"}}),
                "secretRef.key",
            ),
            (
                json!({"secretRef": {"name": "ok", "key": "k", "x": 1}}),
                "exactly",
            ),
            (json!({"secretRef": {"name": "ok"}}), "exactly"),
        ] {
            let e = coerce(&p, &bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
