//! Differential test: every template of the corpus (plus the bundled drivers' values
//! templates) is rendered by our renderer and by Python's Jinja2 3.x with the same Context;
//! the texts must be identical byte for byte. Python's output comes from
//! scripts/jinja2-reference-render.py, in one process for the whole corpus.
//!
//! A second test reads each rendering with our YAML 1.1 reader and with PyYAML's
//! `safe_load` (the YAML corpus in jinja-corpus/yaml/ adds YAML 1.1 scalars, merge keys,
//! duplicate keys and timestamps), and a third proves that each construct docs/drivers.md
//! lists as refused renders in Jinja2 and is refused here with its name and line.
//!
//! Needs `python3` with `jinja2` and `PyYAML`, which scripts/test.sh installs. Missing tools
//! fail the test with a message saying so; they never skip it.

#[path = "jinja_fuzz/reference.rs"]
mod reference;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use reference::{Answer, Reading, Reference, compare_reading};
use serde_json::Value;
use styrmin_core::ValuesTemplate;
use styrmin_core::render::parse_values;

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

/// The corpus Context as the differential tests give it to both engines (keys sorted).
fn context_text() -> String {
    let text =
        fs::read_to_string(repo().join("crates/styrmin-core/tests/jinja-corpus/context.json"))
            .unwrap();
    let context: Value = serde_json::from_str(&text).unwrap();
    serde_json::to_string(&context).unwrap()
}

/// Each rendering, of the corpus templates and of the YAML corpus, is read by our YAML 1.1
/// reader exactly as PyYAML's `safe_load` reads it: the same values (YAML 1.1 booleans,
/// octal, base 60, merge keys, the last of duplicate keys, timestamps as Python's isoformat
/// text), or both refusing the text.
#[test]
fn the_rendered_text_reads_as_pyyaml_reads_it() {
    let work = scratch("jinja-yaml");
    let mut templates = collect_templates(&work);
    let yaml_dir = repo().join("crates/styrmin-core/tests/jinja-corpus/yaml");
    let mut yaml_corpus = 0;
    for entry in fs::read_dir(&yaml_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "j2") {
            let name = format!("yaml/{}", path.file_name().unwrap().to_str().unwrap());
            templates.insert(name, fs::read_to_string(&path).unwrap());
            yaml_corpus += 1;
        }
    }
    assert!(
        yaml_corpus >= 4,
        "the YAML corpus has only {yaml_corpus} templates"
    );
    let context_text = context_text();
    let context: Value = serde_json::from_str(&context_text).unwrap();
    let mut reference = Reference::start(&repo());
    let mut failures = Vec::new();
    let mut same = 0;
    for (name, source) in &templates {
        let Answer::Rendered { text, values } = reference.render(source, &context_text) else {
            continue; // Jinja2 raised: the text test covers that we raise too.
        };
        let ours = match ValuesTemplate::compile(source).and_then(|t| t.render_text(&context)) {
            Ok(ours) if ours == text => ours,
            Ok(_) => {
                failures.push(format!("{name}: the texts differ (see the text test)"));
                continue;
            }
            Err(e) => {
                failures.push(format!("{name}: jinja2 rendered it, we failed: {e}"));
                continue;
            }
        };
        match compare_reading(&values, &parse_values(&ours)) {
            Reading::Differs(difference) => failures.push(format!("{name}: {difference}")),
            Reading::Same if name.starts_with("yaml/") => same += 1,
            Reading::Same | Reading::BothNotYaml => {}
            Reading::Refused => failures.push(format!(
                "{name}: our reader refused what PyYAML reads; the corpus keeps to what both read"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} renderings read differently from PyYAML:\n{}",
        failures.len(),
        templates.len(),
        failures.join("\n")
    );
    assert_eq!(
        same, yaml_corpus,
        "every YAML corpus template reads to values"
    );
    fs::remove_dir_all(&work).unwrap();
}

/// Each construct docs/drivers.md lists as refused renders in Jinja2, and Styrmin refuses it
/// with an error that names the construct and the template line, never a different text.
#[test]
fn refused_constructs_are_named_with_their_line() {
    let cases: &[(&str, &str)] = &[
        (
            "{% set l = [1] %}{% set _ = l.append(2) %}",
            "list.append()",
        ),
        (
            "{% set l = [1] %}{% set _ = l.extend([2]) %}",
            "list.extend()",
        ),
        ("{% set l = [2, 1] %}{% set _ = l.sort() %}", "list.sort()"),
        ("{% set l = [1] %}{{ l.pop() }}", "list.pop()"),
        (
            "{% set l = [1] %}{% set _ = l.insert(0, 2) %}",
            "list.insert()",
        ),
        (
            "{% set l = [1] %}{% set _ = l.remove(1) %}",
            "list.remove()",
        ),
        (
            "{% set l = [1] %}{% set _ = l.reverse() %}",
            "list.reverse()",
        ),
        (
            "{% set d = {} %}{% set _ = d.update({'a': 1}) %}",
            "dict.update()",
        ),
        (
            "{% set d = {} %}{{ d.setdefault('a', 1) }}",
            "dict.setdefault()",
        ),
        ("{% set d = {'a': 1} %}{{ d.pop('a') }}", "dict.pop()"),
        ("{% set d = {'a': 1} %}{{ d.popitem() }}", "dict.popitem()"),
        (
            "{% set d = {'a': 1} %}{% set _ = d.clear() %}",
            "dict.clear()",
        ),
        (
            "{% macro m() %}{{ varargs }}{% endmacro %}{{ m(1, 2) }}",
            "`varargs`",
        ),
        (
            "{% macro m() %}{{ kwargs }}{% endmacro %}{{ m(a=1) }}",
            "`kwargs`",
        ),
        (
            "{% macro m(a, b=a) %}{{ b }}{% endmacro %}{{ m(1) }}",
            "earlier argument `a`",
        ),
        ("{{ (1, 2) }}", "tuple literal"),
        ("{{ lipsum(1) }}", "lipsum()"),
        ("{{ 'see https://example.com' | urlize }}", "urlize"),
        ("{{ 1e40 | int }}", "beyond 128 bits"),
        ("{{ (2 ** 100) ** 2 }}", "beyond 128 bits"),
        ("{{ range(40) | list | pprint }}", "pprint"),
        ("{{ 'a-b-c-d-e-f' | wordwrap(3) }}", "wordwrap"),
        ("{{ '<b>&copy;</b>' | striptags }}", "striptags"),
    ];
    let mut reference = Reference::start(&repo());
    let mut failures = Vec::new();
    for (construct, words) in cases {
        // On line 3, so the line in the error is checked, not guessed.
        let source = format!("a: 1\nb: 2\nc: \"{construct}\"\n");
        match reference.render(&source, "{}") {
            Answer::Rendered { .. } => {}
            other => failures.push(format!("{construct}: Jinja2 does not render it: {other:?}")),
        }
        let error = ValuesTemplate::compile(&source)
            .and_then(|t| t.render_text(&serde_json::json!({})))
            .map_err(|e| e.to_string());
        match error {
            Err(e)
                if e.contains("values.j2.yml:3:")
                    && e.contains(words)
                    && e.contains("not supported") => {}
            other => failures.push(format!(
                "{construct}: expected a refusal naming {words:?} on line 3, got {other:?}"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
