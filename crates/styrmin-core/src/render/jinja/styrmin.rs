//! The filters Styrmin adds for driver templates: per-component settings as lists.

use minijinja::{Error, ErrorKind, Value};

fn component_field(
    components: &Value,
    name: &str,
    field: &str,
    filter: &str,
) -> Result<Value, Error> {
    let component = components.get_attr(name)?;
    if component.is_undefined() {
        let known: Vec<String> = components
            .try_iter()
            .map(|keys| keys.map(|k| k.to_string()).collect())
            .unwrap_or_default();
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{filter}: the driver has no component `{name}` (components: {})",
                known.join(", ")
            ),
        ));
    }
    let value = component.get_attr(field)?;
    Ok(if value.is_undefined() || value.is_none() {
        Value::from(Vec::<Value>::new())
    } else {
        value
    })
}

/// `components | component_env_vars("server")` → `[{name, value}, …]`
pub fn component_env_vars(components: &Value, name: &str) -> Result<Value, Error> {
    component_field(components, name, "env_vars", "component_env_vars")
}

/// `components | component_command("server")` → the command override, `[]` when unset.
pub fn component_command(components: &Value, name: &str) -> Result<Value, Error> {
    component_field(components, name, "command", "component_command")
}

/// `components | component_args("server")` → the args override, `[]` when unset.
pub fn component_args(components: &Value, name: &str) -> Result<Value, Error> {
    component_field(components, name, "args", "component_args")
}
