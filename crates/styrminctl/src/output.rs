use std::io::Write;

use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;

use crate::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// Prints `value` as JSON or YAML. It goes through a `serde_json::Value` first so object
/// keys come out sorted, as they always have, whatever order a type declares its fields in.
pub fn print_value<T: Serialize>(value: &T, format: Format) -> Result<()> {
    let value = serde_json::to_value(value)?;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Yaml => {
            let text = serde_yaml_ng::to_string(&value)?;
            out.write_all(text.as_bytes())?;
        }
        Format::Json | Format::Table => {
            serde_json::to_writer_pretty(&mut out, &value)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// `value` as one line of JSON, keys sorted like [`print_value`]'s.
pub fn json_line<T: Serialize>(value: &T) -> Result<String> {
    Ok(serde_json::to_string(&serde_json::to_value(value)?)?)
}

/// One object: a table row with `table`, or the object as JSON/YAML.
pub fn show<T: Serialize>(value: &T, format: Format, table: fn(&[T])) -> Result<ExitCode> {
    match format {
        Format::Table => table(std::slice::from_ref(value)),
        _ => print_value(value, format)?,
    }
    Ok(ExitCode::Ok)
}

/// A list: a table with `table`, or the list as JSON/YAML.
pub fn show_list<T: Serialize>(list: &[T], format: Format, table: fn(&[T])) -> Result<ExitCode> {
    match format {
        Format::Table => table(list),
        _ => print_value(&list, format)?,
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use serde::Serialize;

    use super::json_line;

    /// A typed answer prints with its keys sorted, not in the order its struct declares
    /// them: the order styrminctl printed when it read answers as JSON values.
    #[test]
    fn typed_values_print_with_sorted_keys() {
        #[derive(Serialize)]
        struct Line {
            seq: i64,
            at: &'static str,
            message: &'static str,
        }
        let line = Line {
            seq: 7,
            at: "2026-01-01T00:00:00Z",
            message: "applied",
        };
        assert_eq!(
            json_line(&line).unwrap(),
            r#"{"at":"2026-01-01T00:00:00Z","message":"applied","seq":7}"#
        );
    }
}
