//! Named GraphQL operations: each owns its document and the types of its variables and of
//! its result, so no caller writes a query string or reads a `serde_json::Value`.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// One named operation of the Styrmin API with a single root field.
pub trait Operation {
    /// The operation's name, as written in its document.
    const NAME: &'static str;
    /// The root field whose value is the result.
    const FIELD: &'static str;
    /// The GraphQL document, checked against docs/schema.graphql by the crate's tests.
    const DOCUMENT: &'static str;
    /// Serialises to the document's variables, one key per declared `$variable` (the
    /// `Default` value is what the tests use to compare the two lists).
    type Variables: Serialize + Default;
    /// The root field's value.
    type Output: DeserializeOwned;
}

/// A document as the tests see it: its operation's name, the text, and the variable names
/// its `Variables` type sends.
pub struct Document {
    pub name: &'static str,
    pub text: &'static str,
    pub variables: fn() -> Vec<String>,
}

pub(crate) fn variable_names<V: Serialize + Default>() -> Vec<String> {
    match serde_json::to_value(V::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Declares operations: `Name: "rootField" (Variables) -> Output = "document";`. Each
/// becomes a unit struct implementing [`Operation`], and the module gets a `DOCUMENTS`
/// list for the tests.
macro_rules! operations {
    ($( $(#[$meta:meta])* $name:ident : $field:literal ($vars:ty) -> $output:ty = $doc:expr; )+) => {
        $(
            $(#[$meta])*
            pub struct $name;

            impl $crate::operation::Operation for $name {
                const NAME: &'static str = stringify!($name);
                const FIELD: &'static str = $field;
                const DOCUMENT: &'static str = $doc;
                type Variables = $vars;
                type Output = $output;
            }
        )+

        /// Every document of this module, for the tests that check them against the SDL.
        pub const DOCUMENTS: &[$crate::operation::Document] = &[$(
            $crate::operation::Document {
                name: stringify!($name),
                text: $doc,
                variables: $crate::operation::variable_names::<$vars>,
            }
        ),+];
    };
}

pub(crate) use operations;

/// Variables of an operation that takes none.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct NoVariables {}
