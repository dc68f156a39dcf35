use std::io::Write;

use anyhow::Result;
use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

pub fn print_value<T: Serialize>(value: &T, format: Format) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match format {
        Format::Yaml => {
            let text = serde_yaml_ng::to_string(value)?;
            out.write_all(text.as_bytes())?;
        }
        Format::Json | Format::Table => {
            serde_json::to_writer_pretty(&mut out, value)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}
