//! Differential test: every template of the corpus (plus the bundled drivers' values
//! templates) is rendered by our renderer and by Python's Jinja2 3.x with the same Context;
//! the texts must be identical byte for byte. Python's output comes from
//! scripts/jinja2-reference-render.py, in one process for the whole corpus.
//!
//! Needs `python3` with `jinja2`, which scripts/test.sh installs. Missing tools fail the
//! test with a message saying so; they never skip it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use styrmin_core::ValuesTemplate;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("styrmin-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The corpus templates and the drivers' own, copied into one directory for the batch run.
fn collect_templates(into: &Path) -> BTreeMap<String, String> {
    let corpus = repo().join("crates/styrmin-core/tests/jinja-corpus/templates");
    let mut templates = BTreeMap::new();
    for entry in fs::read_dir(&corpus).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "j2") {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            templates.insert(name, fs::read_to_string(&path).unwrap());
        }
    }
    for (name, path) in [
        ("driver-my-app.j2", "drivers/examples/my-app/values.j2.yml"),
        ("driver-traefik.j2", "drivers/traefik/values.j2.yml"),
    ] {
        templates.insert(
            name.to_owned(),
            fs::read_to_string(repo().join(path)).unwrap(),
        );
    }
    for (name, source) in &templates {
        fs::write(into.join(name), source).unwrap();
    }
    templates
}

fn python_renders(templates: &Path, context: &Path, out: &Path) {
    let script = repo().join("scripts/jinja2-reference-render.py");
    let result = Command::new("python3")
        .arg(&script)
        .arg("--batch")
        .args([templates, context, out])
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed for this test ({e}); run scripts/test.sh"));
    assert!(
        result.status.success(),
        "the Jinja2 reference renderer failed (is jinja2 installed? scripts/test.sh installs it):\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
}

fn first_difference(expected: &str, actual: &str) -> String {
    for (i, (e, a)) in expected.lines().zip(actual.lines()).enumerate() {
        if e != a {
            return format!("line {}:\n  jinja2: {e:?}\n  ours:   {a:?}", i + 1);
        }
    }
    format!(
        "same lines up to the shorter text; lengths {} (jinja2) and {} (ours); ends {:?} / {:?}",
        expected.len(),
        actual.len(),
        &expected[expected.len().saturating_sub(20)..],
        &actual[actual.len().saturating_sub(20)..]
    )
}

#[test]
fn our_renderer_matches_python_jinja2_on_the_whole_corpus() {
    let work = scratch("jinja-diff");
    let templates_dir = work.join("templates");
    let out_dir = work.join("out");
    fs::create_dir_all(&templates_dir).unwrap();
    fs::create_dir_all(&out_dir).unwrap();
    let templates = collect_templates(&templates_dir);

    // Keys sorted, as our Context serialises them: map iteration order is then the same in
    // both renderers.
    let context_text =
        fs::read_to_string(repo().join("crates/styrmin-core/tests/jinja-corpus/context.json"))
            .unwrap();
    let context: Value = serde_json::from_str(&context_text).unwrap();
    let context_path = work.join("context.json");
    fs::write(&context_path, serde_json::to_string(&context).unwrap()).unwrap();
    python_renders(&templates_dir, &context_path, &out_dir);

    let mut failures = Vec::new();
    for (name, source) in &templates {
        let expected_ok = fs::read_to_string(out_dir.join(format!("{name}.out"))).ok();
        let expected_err = fs::read_to_string(out_dir.join(format!("{name}.err"))).ok();
        let ours = ValuesTemplate::compile(source).and_then(|t| t.render_text(&context));
        match (expected_ok, expected_err, ours) {
            (Some(expected), _, Ok(actual)) if expected == actual => {}
            (Some(expected), _, Ok(actual)) => {
                failures.push(format!("{name}: {}", first_difference(&expected, &actual)))
            }
            (Some(_), _, Err(e)) => {
                failures.push(format!("{name}: jinja2 rendered it, we failed: {e}"))
            }
            (None, Some(_), Err(_)) => {}
            (None, Some(err), Ok(_)) => {
                failures.push(format!("{name}: jinja2 failed ({err}), we rendered it"))
            }
            (None, None, _) => {
                failures.push(format!("{name}: the reference renderer wrote nothing"))
            }
        }
    }
    assert!(
        templates.len() >= 32,
        "the corpus has only {} templates",
        templates.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} templates differ from Jinja2:\n{}",
        failures.len(),
        templates.len(),
        failures.join("\n")
    );
    fs::remove_dir_all(&work).unwrap();
}
