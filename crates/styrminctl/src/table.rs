//! Plain aligned tables for `-o table`.

use serde::Serialize;
use serde_json::Value;

pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
                }
            }
            println!("{}", out.trim_end());
        };
        line(self.headers.clone());
        for row in &self.rows {
            line(row.iter().map(String::as_str).collect());
        }
    }
}

/// `label  value` lines for a single object, the values aligned.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0);
    for (label, value) in fields {
        println!("{label:<width$}  {value}");
    }
}

/// A value as a table cell: text as it is, nothing for null, JSON for anything else.
pub fn cell<T: Serialize + ?Sized>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) | Err(_) => String::new(),
        Ok(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::cell;

    /// A cell shows text as it is, nothing for an absent value, and JSON for the rest:
    /// the rule every table column follows, typed field or JSON scalar alike.
    #[test]
    fn cells_show_text_raw_null_as_nothing_and_the_rest_as_json() {
        assert_eq!(cell("prod-eu"), "prod-eu");
        assert_eq!(cell(&None::<String>), "");
        assert_eq!(cell(&Some("n1")), "n1");
        assert_eq!(cell(&3_i64), "3");
        assert_eq!(cell(&true), "true");
        assert_eq!(cell(&vec!["https://a.test"]), r#"["https://a.test"]"#);
        assert_eq!(cell(&json!({"k": [1, "x"]})), r#"{"k":[1,"x"]}"#);
    }
}
