//! `values.j2.yml` rendering: ours against Python Jinja2 on the same template and Context.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};
use styrmin_bundle::Bundle;
use styrmin_core::ValuesTemplate;
use styrmin_core::context::{self, SampleSettings};
use styrmin_core::driver;

use crate::report::median;

pub struct Figures {
    pub iterations: usize,
    pub rounds: usize,
    /// The Context already in the engine's form, as Python's dict is for Jinja2.
    pub ours_prepared_round_seconds: f64,
    /// Converting the JSON Context on every render, as the operator does.
    pub ours_from_json_round_seconds: f64,
    pub python_round_seconds: f64,
}

impl Figures {
    /// Engine against engine, each given the Context in its own form.
    pub fn ratio(&self) -> f64 {
        self.python_round_seconds / self.ours_prepared_round_seconds
    }

    pub fn ratio_from_json(&self) -> f64 {
        self.python_round_seconds / self.ours_from_json_round_seconds
    }

    pub fn markdown(&self, command: &str) -> String {
        let ms = |s: f64| s * 1e3;
        let us = |s: f64| s / self.iterations as f64 * 1e6;
        let jinja2 = python_jinja2_version().unwrap_or_else(|_| "3.x".into());
        format!(
            "## Values rendering: `drivers/examples/my-app/values.j2.yml`\n\n\
             Command: `{command}`\n\n\
             Each engine compiles the template once, then renders it {n} times per round with the\n\
             example driver's Context for a deployment in `prod`; {r} rounds, median round\n\
             reported, all in one run. Both engines produced the same text.\n\n\
             | engine | Context given as | median round ({n} renders) | per render |\n\
             |---|---|---|---|\n\
             | Python Jinja2 {jinja2} | a Python dict | {py:.1} ms | {py_us:.1} µs |\n\
             | styrmin-core (minijinja, release, thin LTO) | engine values, converted once | {ours:.1} ms | {ours_us:.1} µs |\n\
             | styrmin-core, as the operator calls it | JSON, converted every render | {json:.1} ms | {json_us:.1} µs |\n\n\
             **Engine against engine: {ratio:.1}× faster than Jinja2** (target ≥ 10×); including the\n\
             per-render conversion from JSON: {ratio_json:.1}×.\n",
            n = self.iterations,
            r = self.rounds,
            py = ms(self.python_round_seconds),
            py_us = us(self.python_round_seconds),
            ours = ms(self.ours_prepared_round_seconds),
            ours_us = us(self.ours_prepared_round_seconds),
            json = ms(self.ours_from_json_round_seconds),
            json_us = us(self.ours_from_json_round_seconds),
            ratio = self.ratio(),
            ratio_json = self.ratio_from_json(),
        )
    }
}

fn python_jinja2_version() -> Result<String> {
    let out = Command::new("python3")
        .args(["-c", "import jinja2; print(jinja2.__version__)"])
        .output()?;
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// The example driver's template and a Context as a deployment in `prod` would have it.
fn example(repo: &Path) -> Result<(String, Value)> {
    let dir = repo.join("drivers/examples/my-app");
    let files = Bundle::read_dir(&dir)?.driver_files()?;
    let template = files.values_template.clone().unwrap_or_default();
    let loaded = driver::load(&files);
    let driver = loaded
        .driver
        .ok_or_else(|| anyhow!("the example driver does not load: {:?}", loaded.diagnostics))?;
    let settings = SampleSettings {
        cluster_config: json!({"fqdn_suffix": "apps.example.com", "standard_storage": {"storage_class": "fast"}})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        environment_config: json!({"ingress_class": "traefik-prod"}).as_object().cloned().unwrap_or_default(),
        environment: Some("prod".into()),
        parameters: BTreeMap::from([("admin_email".to_owned(), json!("ops@example.com"))]),
        ..Default::default()
    };
    let ctx = context::sample(&driver.spec, "2.3.1", &settings).map_err(|e| anyhow!("{e}"))?;
    Ok((template, ctx.to_value()))
}

pub fn measure(repo: &Path, iterations: usize, rounds: usize) -> Result<Figures> {
    let (template_source, context) = example(repo)?;
    let template = ValuesTemplate::compile(&template_source)?;
    let expected = template.render_text(&context)?;
    let mut from_json = Vec::with_capacity(rounds);
    let mut prepared_rounds = Vec::with_capacity(rounds);
    let prepared = template.prepare(&context);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(template.render_text(std::hint::black_box(&context))?);
        }
        from_json.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(template.render_prepared(std::hint::black_box(&prepared))?);
        }
        prepared_rounds.push(start.elapsed().as_secs_f64());
    }

    let scratch = std::env::temp_dir().join(format!("styrmin-bench-render-{}", std::process::id()));
    fs::create_dir_all(&scratch)?;
    let template_path = scratch.join("values.j2.yml");
    let context_path = scratch.join("context.json");
    fs::write(&template_path, &template_source)?;
    fs::write(&context_path, serde_json::to_string(&context)?)?;
    let out = Command::new("python3")
        .arg(repo.join("scripts/bench-jinja2-render.py"))
        .args([&template_path, &context_path])
        .args([iterations.to_string(), rounds.to_string()])
        .output()
        .context("python3 is needed to compare with Jinja2")?;
    fs::remove_dir_all(&scratch)?;
    if !out.status.success() {
        bail!(
            "the Jinja2 benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let python: Value = serde_json::from_slice(&out.stdout)?;
    if python["output"].as_str() != Some(expected.as_str()) {
        bail!("the two engines rendered different text; run the differential test");
    }
    let mut python_rounds: Vec<f64> = python["rounds_seconds"]
        .as_array()
        .ok_or_else(|| anyhow!("unexpected output from the Jinja2 benchmark"))?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    Ok(Figures {
        iterations,
        rounds,
        ours_prepared_round_seconds: median(&mut prepared_rounds),
        ours_from_json_round_seconds: median(&mut from_json),
        python_round_seconds: median(&mut python_rounds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small run proves the harness works end to end (both engines, same output).
    #[test]
    fn a_small_run_measures_both_engines_on_the_same_output() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let figures = measure(&repo, 20, 3).unwrap();
        assert!(figures.ours_prepared_round_seconds > 0.0 && figures.python_round_seconds > 0.0);
        assert!(figures.markdown("cmd").contains("faster"));
    }
}
