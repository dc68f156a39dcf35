//! Canonical JSON: keys sorted at every level, no whitespace, so that two values that are
//! equal as JSON give the same text (and digest) whatever map type or key order produced
//! them. The Context digest, the values digest and the operator's child hashes use it.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// The canonical text of `value`.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write(&mut out, value);
    out
}

/// sha256 of the canonical text, as 64 lowercase hex digits.
pub fn sha256_hex(value: &Value) -> String {
    let hash = Sha256::digest(to_string(value).as_bytes());
    let mut hex = String::with_capacity(64);
    for b in hash {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

fn write(out: &mut String, value: &Value) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(out, &map[key]);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Key order does not change the text or the digest; nested maps are sorted too.
    #[test]
    fn key_order_does_not_matter_at_any_level() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"q": 2, "p": 1}], "x": null}}"#)
                .unwrap();
        let b = json!({"a": {"x": null, "y": [1, {"p": 1, "q": 2}]}, "b": 1});
        assert_eq!(
            to_string(&a),
            r#"{"a":{"x":null,"y":[1,{"p":1,"q":2}]},"b":1}"#
        );
        assert_eq!(sha256_hex(&a), sha256_hex(&b));
    }

    /// Different values give different digests, and list order counts.
    #[test]
    fn a_different_value_or_list_order_gives_another_digest() {
        let digest = sha256_hex(&json!({"a": [1, 2]}));
        assert_eq!(digest.len(), 64);
        assert_ne!(digest, sha256_hex(&json!({"a": [2, 1]})));
        assert_ne!(digest, sha256_hex(&json!({"a": [1, 2], "b": 0})));
        // The digest of an empty map is sha256("{}").
        assert_eq!(
            sha256_hex(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
