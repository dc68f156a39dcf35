//! Differential fuzzer: templates generated from a grammar of Jinja2 constructs, with
//! generated Contexts, are rendered by our renderer and by Python's Jinja2, and each
//! rendering is read by our YAML 1.1 reader and by PyYAML's `safe_load`; texts and values
//! must be identical, or both sides must fail. Python runs as one long-lived process
//! (`scripts/jinja2-reference-render.py --serve`).
//!
//! - `fuzz_regressions_match` replays every difference the fuzzer ever found
//!   (tests/jinja-corpus/fuzz-regressions.jsonl).
//! - `fuzz_short_form_matches` runs a fixed seed's cases plus `STYRMIN_FUZZ_NEW_CASES`
//!   (default 1,500) new cases from a seed derived from the source tree (the renderer, the
//!   YAML reader and the fuzzer): a change of any of them brings new cases, and the same
//!   commit runs the same cases everywhere; a failure prints the seed.
//! - `fuzz_long_form_matches` (ignored; run with `--ignored`) runs `STYRMIN_FUZZ_CASES`
//!   cases (default 100,000) from `STYRMIN_FUZZ_SEED` (default 16) and prints the run's
//!   figures.
//!
//! Needs `python3` with `jinja2` and `PyYAML`, which scripts/test.sh installs. Missing tools
//! fail the test with a message saying so; they never skip it.

#[path = "jinja_fuzz/generate.rs"]
mod generate;
#[path = "jinja_fuzz/reference.rs"]
mod reference;

use std::path::{Path, PathBuf};
use std::time::Instant;

use generate::{Case, Generator};
use reference::{Answer, Reading, Reference, compare_reading, is_documented_refusal};
use serde_json::Value;
use styrmin_core::render::{PreparedContext, RenderError, ValuesTemplate, parse_values};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// How a case came out when both sides agree.
#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    /// Rendered and read identically.
    same_values: usize,
    /// Rendered identically; both YAML readers refused the text.
    both_not_yaml: usize,
    /// Both template engines raised.
    both_template_errors: usize,
    /// Jinja2 raised (a TypeError, a syntax it rejects) where minijinja is more lenient: a
    /// template that fails in Jinja2 is no working driver, so this is not a difference.
    only_jinja2_raised: usize,
    /// Jinja2 printed an object's memory address (`<reversed object at 0x…>`), which no
    /// other process can reproduce.
    python_address: usize,
    /// Python rendered it; we refused a construct we document as unsupported.
    refused: usize,
    differences: Vec<String>,
}

/// Our rendering of a case and our reading of that text.
type Ours = (String, Result<serde_json::Map<String, Value>, RenderError>);

/// Our side of one case: the rendering, then the reading of it.
fn ours(case: &Case) -> Result<Ours, String> {
    let context = PreparedContext::from_text(&case.context).map_err(|e| e.to_string())?;
    let template = ValuesTemplate::compile(&case.template).map_err(|e| e.to_string())?;
    let text = template
        .render_prepared(&context)
        .map_err(|e| e.to_string())?;
    let values = parse_values(&text);
    Ok((text, values))
}

fn compare(case: &Case, answer: Answer, tally: &mut Tally) {
    tally.cases += 1;
    let ours = ours(case);
    let difference = match (answer, ours) {
        (Answer::TemplateError(_), Err(_)) => {
            tally.both_template_errors += 1;
            None
        }
        (Answer::TemplateError(_), Ok(_)) => {
            tally.only_jinja2_raised += 1;
            None
        }
        (Answer::Rendered { text, .. }, _) if text.contains(" object at 0x") => {
            tally.python_address += 1;
            None
        }
        (Answer::Rendered { .. }, Err(e)) if is_documented_refusal(&e) => {
            tally.refused += 1;
            None
        }
        (Answer::Rendered { text, .. }, Err(e)) => {
            Some(format!("jinja2 rendered {text:?}; we raised {e:?}"))
        }
        (Answer::Rendered { text, .. }, Ok((ours, _))) if text != ours => Some(format!(
            "texts differ:\n  jinja2: {text:?}\n  ours:   {ours:?}"
        )),
        (Answer::Rendered { values, .. }, Ok((_, read))) => match compare_reading(&values, &read) {
            Reading::Same => {
                tally.same_values += 1;
                None
            }
            Reading::BothNotYaml => {
                tally.both_not_yaml += 1;
                None
            }
            Reading::Refused => {
                tally.refused += 1;
                None
            }
            Reading::Differs(difference) => Some(difference),
        },
    };
    if let Some(difference) = difference {
        let line = serde_json::json!({"template": case.template, "context": case.context});
        tally
            .differences
            .push(format!("{difference}\n  case: {line}"));
    }
}

fn assert_no_difference(tally: &Tally, what: &str) {
    // STYRMIN_FUZZ_DUMP=FILE writes every differing case, one JSON line each, ready to be
    // replayed with STYRMIN_FUZZ_FILE or added to the regression cases.
    if let Ok(path) = std::env::var("STYRMIN_FUZZ_DUMP") {
        let lines: Vec<&str> = tally
            .differences
            .iter()
            .filter_map(|d| d.rsplit_once("\n  case: ").map(|(_, case)| case))
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    }
    let show = env_number("STYRMIN_FUZZ_SHOW", 15) as usize;
    let shown: Vec<&String> = tally.differences.iter().take(show).collect();
    assert!(
        tally.differences.is_empty(),
        "{what}: {} of {} cases differ from Jinja2 + PyYAML (first {} below; add each case line to tests/jinja-corpus/fuzz-regressions.jsonl once fixed):\n\n{}",
        tally.differences.len(),
        tally.cases,
        shown.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `cases` generated cases from `seed`, after passing over its first `skip` cases
/// (generated, not run: one long run split over processes covers the same cases).
fn run_generated(
    reference: &mut Reference,
    seed: u64,
    skip: usize,
    cases: usize,
    tally: &mut Tally,
) {
    let mut generator = Generator::new(seed);
    for _ in 0..skip {
        generator.case();
    }
    for _ in 0..cases {
        let case = generator.case();
        let answer = reference.render(&case.template, &case.context);
        compare(&case, answer, tally);
    }
}

/// Every difference the fuzzer found is kept as a case and must match for good.
#[test]
fn fuzz_regressions_match() {
    // STYRMIN_FUZZ_FILE replays another file of cases in the same form instead.
    let path = std::env::var("STYRMIN_FUZZ_FILE").map_or_else(
        |_| repo().join("crates/styrmin-core/tests/jinja-corpus/fuzz-regressions.jsonl"),
        PathBuf::from,
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let mut reference = Reference::start(&repo());
    let mut tally = Tally::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).unwrap();
        let case = Case {
            template: entry["template"].as_str().unwrap().to_owned(),
            context: entry["context"].as_str().unwrap().to_owned(),
        };
        let answer = reference.render(&case.template, &case.context);
        compare(&case, answer, &mut tally);
    }
    eprintln!("{}: {tally:?}", path.display());
    assert_no_difference(&tally, "regression cases");
    assert!(tally.cases >= 20, "only {} regression cases", tally.cases);
}

/// The differences docs/drivers.md lists as known (`~` of a non-text value, `/` of integers
/// beyond 2**53, an undefined value passed to a macro argument that has a default, text
/// that depends on a Python memory address) still differ: if minijinja changes so that one
/// matches, this fails and the docs must be updated.
#[test]
fn fuzz_known_differences_still_differ() {
    let text = std::fs::read_to_string(
        repo().join("crates/styrmin-core/tests/jinja-corpus/fuzz-known-differences.jsonl"),
    )
    .unwrap();
    let mut reference = Reference::start(&repo());
    let mut count = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: Value = serde_json::from_str(line).unwrap();
        let case = Case {
            template: entry["template"].as_str().unwrap().to_owned(),
            context: entry["context"].as_str().unwrap().to_owned(),
        };
        let answer = reference.render(&case.template, &case.context);
        let mut tally = Tally::default();
        compare(&case, answer, &mut tally);
        assert_eq!(
            tally.differences.len(),
            1,
            "a known difference now matches Jinja2; update docs/drivers.md and move the case to fuzz-regressions.jsonl: {line}"
        );
        // Each known difference says which documented difference it is.
        let why = entry["why"].as_str().unwrap_or_default();
        assert!(
            why.len() > 20,
            "a known difference without its explanation (a `why` naming the docs/drivers.md entry): {}",
            tally.differences[0]
        );
        count += 1;
    }
    assert!(count >= 5, "only {count} known differences");
}

/// The files whose change may change what the fuzzer finds: the renderer, the YAML reader
/// and the fuzzer itself.
const SEED_SOURCES: &[&str] = &[
    "crates/styrmin-core/src/render",
    "crates/styrmin-core/src/yaml",
    "crates/styrmin-core/tests/jinja_fuzz",
    "crates/styrmin-core/tests/jinja_fuzz.rs",
];

/// A seed derived from the source tree: FNV-1a over the paths and texts (line endings
/// normalised) of `SEED_SOURCES`. Every change of the engine or the grammar brings new
/// cases, and a CI run of a commit replays exactly the cases of a local run of it.
fn source_tree_seed(repo: &Path) -> u64 {
    fn files(path: &Path, out: &mut Vec<PathBuf>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                files(&entry.unwrap().path(), out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path.to_owned());
        }
    }
    let mut paths = Vec::new();
    for source in SEED_SOURCES {
        files(&repo.join(source), &mut paths);
    }
    paths.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for path in paths {
        let relative = path
            .strip_prefix(repo)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        feed(relative.as_bytes());
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\r\n", "\n");
        feed(text.as_bytes());
    }
    hash
}

/// A fixed seed's cases (the same every run), then `STYRMIN_FUZZ_NEW_CASES` (default
/// 1,500) new cases from a seed derived from the source tree: bounded by a count, not a
/// time, so a run of a commit is the same everywhere.
#[test]
fn fuzz_short_form_matches() {
    let repo = repo();
    let mut reference = Reference::start(&repo);
    let mut fixed = Tally::default();
    run_generated(&mut reference, 1, 0, 1500, &mut fixed);
    assert_eq!(fixed.cases, 1500);
    assert_no_difference(&fixed, "fixed seed 1");
    // A good share of cases must get as far as the YAML reading, or the grammar tests
    // little (the rest end in errors both sides raise, or in documented refusals).
    assert!(
        fixed.same_values * 3 > fixed.cases,
        "only {} of {} cases rendered and read: {fixed:?}",
        fixed.same_values,
        fixed.cases
    );

    let seed = source_tree_seed(&repo);
    let cases = env_number("STYRMIN_FUZZ_NEW_CASES", 1500) as usize;
    let started = Instant::now();
    let mut fresh = Tally::default();
    run_generated(&mut reference, seed, 0, cases, &mut fresh);
    eprintln!(
        "fuzz short form: seed {seed} (from the source tree), {} new cases in {:.1} s: {fresh:?}",
        fresh.cases,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(fresh.cases, cases);
    assert_no_difference(
        &fresh,
        &format!(
            "new cases of seed {seed} (from the source tree; replay with STYRMIN_FUZZ_SEED={seed} STYRMIN_FUZZ_CASES={cases} and --ignored fuzz_long_form_matches)"
        ),
    );
}

/// The long run recorded in docs/drivers.md: `STYRMIN_FUZZ_CASES` cases from
/// `STYRMIN_FUZZ_SEED`, no difference allowed.
#[test]
#[ignore = "long: run with `cargo test -p styrmin-core --release --test jinja_fuzz -- --ignored`"]
fn fuzz_long_form_matches() {
    let cases = env_number("STYRMIN_FUZZ_CASES", 100_000) as usize;
    let seed = env_number("STYRMIN_FUZZ_SEED", 16);
    // STYRMIN_FUZZ_SKIP=N starts at the seed's case N: a long run split over processes.
    let skip = env_number("STYRMIN_FUZZ_SKIP", 0) as usize;
    let mut reference = Reference::start(&repo());
    let mut tally = Tally::default();
    let started = Instant::now();
    run_generated(&mut reference, seed, skip, cases, &mut tally);
    let Tally { differences, .. } = &tally;
    eprintln!(
        "fuzz long form: seed {seed}, cases {skip}..{}, {} cases in {:.1} s, {} differences: same values {}, both not YAML {}, both template errors {}, only Jinja2 raised {}, Python printed an address {}, refused {}",
        skip + cases,
        tally.cases,
        started.elapsed().as_secs_f64(),
        differences.len(),
        tally.same_values,
        tally.both_not_yaml,
        tally.both_template_errors,
        tally.only_jinja2_raised,
        tally.python_address,
        tally.refused
    );
    assert_eq!(tally.cases, cases);
    assert_no_difference(&tally, &format!("seed {seed}"));
}
