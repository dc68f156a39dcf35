//! The Context in the template engine's value form. Context maps are small (a handful of
//! keys), so they become insertion-ordered vectors searched linearly: building the engine's
//! own hash maps for every render cost as much as rendering the template.

use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object, ObjectRepr};

/// A JSON object as a template sees it: keys in the JSON's order.
#[derive(Debug)]
struct SmallMap(Vec<(Value, Value)>);

impl Object for SmallMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let wanted = key.as_str()?;
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == Some(wanted))
            .map(|(_, v)| v.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.iter().map(|(k, _)| k.clone()).collect())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }
}

pub fn from_json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            Value::from(items.iter().map(from_json).collect::<Vec<_>>())
        }
        serde_json::Value::Object(map) => from_entries(map.iter()),
    }
}

pub fn from_entries<'a>(
    entries: impl Iterator<Item = (&'a String, &'a serde_json::Value)>,
) -> Value {
    Value::from_object(SmallMap(
        entries
            .map(|(k, v)| (Value::from(k.as_str()), from_json(v)))
            .collect(),
    ))
}
