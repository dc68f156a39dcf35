//! BENCHMARKS.md: one section per benchmark, replaced in place between markers, each with
//! the command that produced it.

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};

const HEADER: &str = "# Benchmarks\n\n\
Figures measured on the project's 2-core machine by `crates/styrmin-bench`. Each section\n\
names the command that produced it; medians and ratios come from one run, since the\n\
machine is noisy. Re-run the command to refresh a section.\n";

/// Writes `body` as the section `name`, keeping every other section.
pub fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let begin = format!("<!-- bench:{name} -->");
    let end = format!("<!-- /bench:{name} -->");
    let current = fs::read_to_string(path).unwrap_or_else(|_| HEADER.to_owned());
    let section = format!("{begin}\n{}\n{end}", body.trim_end());
    let updated = match (current.find(&begin), current.find(&end)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{section}{}", &current[..a], &current[b + end.len()..])
        }
        _ => format!("{}\n{section}\n", current.trim_end()),
    };
    fs::write(path, updated).with_context(|| format!("cannot write {}", path.display()))
}

/// The nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_in_place_and_others_kept() {
        let dir = std::env::temp_dir().join(format!("styrmin-bench-report-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("BENCHMARKS.md");
        write_section(&path, "a", "first A").unwrap();
        write_section(&path, "b", "only B").unwrap();
        write_section(&path, "a", "second A").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Benchmarks"));
        assert!(text.contains("second A") && !text.contains("first A") && text.contains("only B"));
        assert!(text.find("second A").unwrap() < text.find("only B").unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
