//! Form fields generated from a driver's declared parameters, and the parameters read back
//! from a submitted form. Pure: the handlers fetch and send, this decides what is shown
//! and what is asked for.
//!
//! Inputs are named `p.<parameter>`. Values go to the API as typed, where the type is
//! known (a checkbox is a boolean); other text goes as typed text, which the API's own
//! coercion checks against the declared kind, so its error lands next to the field.
//! A `secret` parameter is a password input that never shows a value; what is typed in it
//! goes to the API as a secret parameter, and an empty one changes nothing.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use styrmin_core::driver::{Parameter, ParameterKind};
use styrmin_core::parameters::{self, spelled};

pub const PREFIX: &str = "p.";

/// The parameters a driver file (a version's `spec`, as the API returns it) declares;
/// none if it has none.
pub fn declared(driver_file: &Value) -> Vec<Parameter> {
    serde_json::from_value(driver_file["spec"]["parameters"].clone()).unwrap_or_default()
}

/// Every declared parameter with the value in effect: the one set, else the default.
pub fn effective(declared: &[Parameter], set: &Value) -> Vec<Value> {
    declared
        .iter()
        .map(|p| {
            let own = set.get(&p.name).filter(|v| !v.is_null());
            let value = own.or(p.default.as_ref());
            if p.kind == ParameterKind::Secret {
                return json!({
                    "name": p.name,
                    "label": p.label.as_deref().unwrap_or(&p.name),
                    "value": "(secret)",
                    "is_default": false,
                });
            }
            json!({
                "name": p.name,
                "label": p.label.as_deref().unwrap_or(&p.name),
                "value": value.map(spelled),
                "is_default": own.is_none() && value.is_some(),
            })
        })
        .collect()
}

/// One input per parameter: the input kind for its declared kind, its value (`values`
/// first, then the default), whether it is required, and the API's error for it, if any
/// (errors name fields `parameters.<name>`).
pub fn form_fields(
    declared: &[Parameter],
    values: &Map<String, Value>,
    errors: &BTreeMap<String, String>,
) -> Vec<Value> {
    declared
        .iter()
        .map(|p| {
            let secret = p.kind == ParameterKind::Secret;
            let value = if secret {
                None
            } else {
                values.get(&p.name).or(p.default.as_ref())
            };
            let input = match p.kind {
                ParameterKind::Integer => "number",
                ParameterKind::Boolean => "checkbox",
                ParameterKind::Enum => "select",
                ParameterKind::String => "text",
                ParameterKind::Secret => "password",
            };
            let options: Vec<String> = p.values.iter().map(spelled).collect();
            json!({
                "name": format!("{PREFIX}{}", p.name),
                "id": format!("param-{}", p.name),
                "label": p.label.as_deref().unwrap_or(&p.name),
                "description": p.description,
                "input": input,
                // An edit leaves a secret as it is when nothing is typed: never required by
                // the form (the API says so when a new deployment lacks one).
                "required": p.is_required() && !secret,
                "value": value.map(spelled).unwrap_or_default(),
                "checked": value.is_some_and(|v| v == &Value::Bool(true) || v == "true"),
                "options": options,
                "error": errors
                    .get(&format!("parameters.{}", p.name))
                    .or_else(|| errors.get(&format!("secretParameters.{}", p.name))),
            })
        })
        .collect()
}

/// The parameter values a submitted form holds, for a new deployment: an empty text
/// input says nothing (so a default applies, or the API reports a required one missing);
/// an unchecked checkbox is `false`.
pub fn submitted(declared: &[Parameter], form: &BTreeMap<String, String>) -> Map<String, Value> {
    let mut values = Map::new();
    for p in declared {
        let raw = form.get(&format!("{PREFIX}{}", p.name));
        let value = match p.kind {
            ParameterKind::Secret => continue,
            ParameterKind::Boolean => Value::Bool(raw.is_some_and(|v| v == "true" || v == "on")),
            // Typed when it fits the declared kind; else as typed, for the API to refuse.
            _ => match raw.map(|v| v.trim()) {
                Some(text) if !text.is_empty() => {
                    let typed = Value::String(text.to_owned());
                    parameters::coerce(p, &typed).unwrap_or(typed)
                }
                _ => continue,
            },
        };
        values.insert(p.name.clone(), value);
    }
    values
}

/// The secret parameters typed in a submitted form (as typed: a password may begin or end
/// with spaces); an empty input says nothing.
pub fn submitted_secrets(
    declared: &[Parameter],
    form: &BTreeMap<String, String>,
) -> Map<String, Value> {
    declared
        .iter()
        .filter(|p| p.kind == ParameterKind::Secret)
        .filter_map(|p| {
            let raw = form.get(&format!("{PREFIX}{}", p.name))?;
            (!raw.is_empty()).then(|| (p.name.clone(), Value::String(raw.clone())))
        })
        .collect()
}

/// What an edit form changes against the deployment's `set` values: only parameters
/// whose submitted value differs from the value in effect. A text input emptied on a
/// parameter with a default becomes `null`: the value set is removed, the default applies.
pub fn changed(
    declared: &[Parameter],
    set: &Value,
    form: &BTreeMap<String, String>,
) -> Map<String, Value> {
    let submitted = submitted(declared, form);
    let mut changes = Map::new();
    for p in declared.iter().filter(|p| p.kind != ParameterKind::Secret) {
        let own = set.get(&p.name).filter(|v| !v.is_null());
        let in_effect = own.or(p.default.as_ref());
        match submitted.get(&p.name) {
            Some(new) if in_effect.map(spelled) != Some(spelled(new)) => {
                changes.insert(p.name.clone(), new.clone());
            }
            None if own.is_some() && p.default.is_some() => {
                changes.insert(p.name.clone(), Value::Null);
            }
            _ => {}
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Vec<Parameter> {
        declared(&json!({"spec": {"parameters": [
            {"name": "replicas", "label": "Server replicas", "kind": "integer", "default": 2},
            {"name": "log_level", "kind": "enum", "values": ["debug", "info"], "default": "info"},
            {"name": "enable_api_docs", "kind": "boolean", "default": false},
            {"name": "admin_email", "kind": "string"},
            {"name": "password", "kind": "secret"},
        ]}}))
    }

    fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn each_kind_gets_its_input_with_default_and_required_marker() {
        let fields = form_fields(&example(), &Map::new(), &BTreeMap::new());
        let by_input: Vec<(&str, &str, bool)> = fields
            .iter()
            .map(|f| {
                (
                    f["input"].as_str().unwrap(),
                    f["value"].as_str().unwrap(),
                    f["required"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            by_input,
            [
                ("number", "2", false),
                ("select", "info", false),
                ("checkbox", "false", false),
                ("text", "", true),
                ("password", "", false),
            ]
        );
        assert_eq!(fields[0]["label"], "Server replicas");
        assert_eq!(fields[1]["options"], json!(["debug", "info"]));
        assert_eq!(fields[2]["checked"], false);
    }

    /// A secret is a password input that never shows a value, even one typed before a
    /// refusal; what is typed goes as a secret parameter, not a parameter.
    #[test]
    fn a_secret_parameter_is_a_password_input_that_shows_nothing() {
        let typed = form(&[("p.password", " s3cret "), ("p.admin_email", "a@b.c")]);
        let values = submitted(&example(), &typed);
        assert!(!values.contains_key("password"));
        assert_eq!(
            Value::Object(submitted_secrets(&example(), &typed)),
            json!({"password": " s3cret "})
        );
        assert!(submitted_secrets(&example(), &form(&[("p.password", "")])).is_empty());
        let fields = form_fields(&example(), &values, &BTreeMap::new());
        assert_eq!(fields[4]["value"], "");
        let shown = effective(
            &example(),
            &json!({"password": {"secretRef": {"name": "x", "key": "password"}}}),
        );
        assert_eq!(shown[4]["value"], "(secret)");
        assert!(
            changed(&example(), &json!({}), &typed)
                .get("password")
                .is_none()
        );
    }

    #[test]
    fn the_api_error_of_a_parameter_lands_on_its_field() {
        let errors = BTreeMap::from([(
            "parameters.admin_email".to_owned(),
            "required: the driver gives no default".to_owned(),
        )]);
        let fields = form_fields(&example(), &Map::new(), &errors);
        assert_eq!(fields[3]["error"], "required: the driver gives no default");
        assert!(fields[0]["error"].is_null());
    }

    #[test]
    fn a_new_deployment_sends_what_was_typed_and_every_checkbox() {
        let values = submitted(
            &example(),
            &form(&[("p.replicas", "3"), ("p.admin_email", "  "), ("csrf", "x")]),
        );
        assert_eq!(
            Value::Object(values),
            json!({"replicas": 3, "enable_api_docs": false})
        );
    }

    #[test]
    fn an_edit_sends_only_changes_and_null_to_restore_a_default() {
        let set = json!({"replicas": 3, "admin_email": "a@example.com"});
        let unchanged = form(&[
            ("p.replicas", "3"),
            ("p.log_level", "info"),
            ("p.admin_email", "a@example.com"),
        ]);
        assert!(changed(&example(), &set, &unchanged).is_empty());

        let edited = form(&[
            ("p.replicas", ""),
            ("p.log_level", "debug"),
            ("p.enable_api_docs", "true"),
            ("p.admin_email", "a@example.com"),
        ]);
        assert_eq!(
            Value::Object(changed(&example(), &set, &edited)),
            json!({"replicas": null, "log_level": "debug", "enable_api_docs": true})
        );
        let wrong = form(&[("p.replicas", "two")]);
        assert_eq!(
            changed(&example(), &set, &wrong)["replicas"],
            json!("two"),
            "left for the API to refuse, next to the field"
        );
    }

    #[test]
    fn effective_values_mark_defaults() {
        let shown = effective(&example(), &json!({"replicas": 3}));
        assert_eq!(shown[0]["value"], "3");
        assert_eq!(shown[0]["is_default"], false);
        assert_eq!(shown[1]["value"], "info");
        assert_eq!(shown[1]["is_default"], true);
        assert!(shown[3]["value"].is_null());
    }
}
