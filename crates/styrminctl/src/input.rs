//! Reading user-supplied values: `-p name=value`, `--values FILE`, JSON config strings.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;
use styrmin_core::context::{ComponentSettings, EnvVar};
use styrmin_core::render::yaml_to_json;

/// `name=value` pairs; values stay strings and are typed against the driver later.
pub fn parse_assignments(pairs: &[String], flag: &str) -> Result<BTreeMap<String, Value>> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("{flag} {pair}: expected NAME=VALUE"))?;
        if name.is_empty() {
            bail!("{flag} {pair}: the name is empty");
        }
        if out
            .insert(name.to_owned(), Value::String(value.to_owned()))
            .is_some()
        {
            bail!("{flag} {name} is given twice");
        }
    }
    Ok(out)
}

/// A YAML or JSON file (JSON is read as YAML).
pub fn read_document(path: &Path) -> Result<Value> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{} is not valid YAML or JSON", path.display()))?;
    Ok(yaml_to_json(yaml))
}

pub fn read_mapping(path: &Path) -> Result<serde_json::Map<String, Value>> {
    match read_document(path)? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(serde_json::Map::new()),
        _ => bail!("{} must hold a mapping of names to values", path.display()),
    }
}

/// A JSON object given on the command line, e.g. `-c '{"fqdn_suffix": "example.com"}'`.
pub fn parse_json_object(text: &str, flag: &str) -> Result<serde_json::Map<String, Value>> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| anyhow!("{flag}: not valid JSON: {e}"))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => bail!("{flag}: expected a JSON object such as '{{\"key\": \"value\"}}'"),
    }
}

/// Per-component settings from `--env COMPONENT.NAME=VALUE`, `--command COMPONENT=JSON` and
/// `--args COMPONENT=JSON`.
pub fn component_settings(
    env: &[String],
    command: &[String],
    args: &[String],
) -> Result<BTreeMap<String, ComponentSettings>> {
    let mut out: BTreeMap<String, ComponentSettings> = BTreeMap::new();
    for pair in env {
        let (target, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--env {pair}: expected COMPONENT.NAME=VALUE"))?;
        let (component, name) = target
            .split_once('.')
            .ok_or_else(|| anyhow!("--env {pair}: expected COMPONENT.NAME=VALUE"))?;
        out.entry(component.to_owned())
            .or_default()
            .env_vars
            .push(EnvVar {
                name: name.to_owned(),
                value: value.to_owned(),
            });
    }
    for (flag, pairs, is_command) in [("--command", command, true), ("--args", args, false)] {
        for pair in pairs {
            let (component, json) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("{flag} {pair}: expected COMPONENT=JSON_LIST"))?;
            let list: Vec<String> = serde_json::from_str(json).map_err(|_| {
                anyhow!(
                    "{flag} {pair}: expected a JSON list of strings, e.g. '[\"run\", \"--debug\"]'"
                )
            })?;
            let settings = out.entry(component.to_owned()).or_default();
            if is_command {
                settings.command = Some(list);
            } else {
                settings.args = Some(list);
            }
        }
    }
    Ok(out)
}
