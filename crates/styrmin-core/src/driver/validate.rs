//! Checks on a parsed driver that span fields: names unique and valid, references that
//! resolve (services → components, actions → functions in actions.py), defaults that fit
//! their kind, versions that satisfy the specifier.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::model::*;
use super::parse::Positions;
use super::python::top_level_functions;
use crate::diagnostics::{Diagnostics, Severity, did_you_mean};
use crate::naming::{dns1123_label_problem, label_key_problem, label_value_problem};
use crate::parameters::check_value;
use crate::version::Version;

pub const ACTIONS_FILE: &str = "actions.py";

/// What validation needs to know about the rest of the driver's files.
pub struct Bundle<'a> {
    pub actions: Option<&'a str>,
    /// Every file path in the driver directory, `/`-separated and relative.
    pub files: &'a BTreeSet<String>,
}

struct Check<'a> {
    d: &'a mut Diagnostics,
    positions: &'a Positions,
}

impl Check<'_> {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.d.error(self.positions.at(field), field, message);
    }

    fn warning(&mut self, field: &str, message: impl Into<String>) {
        self.d.warning(self.positions.at(field), field, message);
    }

    fn unknown_ref(&mut self, field: &str, what: &str, name: &str, known: &[&str]) {
        let hint = did_you_mean(name, known.iter().copied())
            .map(|k| format!("did you mean `{k}`?"))
            .or_else(|| Some(format!("known: {}", known.join(", "))));
        self.d.push(
            Severity::Error,
            self.positions.at(field),
            field,
            format!("no {what} named `{name}`"),
            hint,
        );
    }

    fn item(&self, list: &str, i: usize) -> String {
        self.positions.item(list, i)
    }

    fn unique<'n>(&mut self, path: &str, names: impl Iterator<Item = &'n str>, what: &str) {
        let mut seen = HashSet::new();
        for (i, name) in names.enumerate() {
            if !seen.insert(name) {
                self.error(
                    &format!("{}.name", self.item(path, i)),
                    format!("another {what} is already named `{name}`"),
                );
            }
        }
    }
}

pub fn validate(
    driver: &ApplicationDriver,
    bundle: &Bundle<'_>,
    d: &mut Diagnostics,
    positions: &Positions,
) {
    let mut c = Check { d, positions };
    let spec = &driver.spec;
    check_versions(&mut c, spec);
    check_chart(&mut c, spec, bundle);
    check_components(&mut c, spec, bundle);
    check_services(&mut c, spec);
    check_parameters(&mut c, spec);
    check_env_vars(&mut c, spec);
    check_container_overrides(&mut c, spec);
    check_actions(&mut c, spec, bundle);
}

fn check_versions(c: &mut Check<'_>, spec: &DriverSpec) {
    if let Some(default) = &spec.default_version {
        match Version::parse(default) {
            Err(e) => c.error("spec.default_version", e.to_string()),
            Ok(v) if !spec.supported_versions.matches(&v) => c.error(
                "spec.default_version",
                format!(
                    "`{default}` does not satisfy supported_versions `{}`",
                    spec.supported_versions
                ),
            ),
            Ok(_) => {}
        }
    }
}

fn check_chart(c: &mut Check<'_>, spec: &DriverSpec, bundle: &Bundle<'_>) {
    let chart = &spec.helm.main;
    match chart.source() {
        None => c.error(
            "spec.helm.main.location",
            format!(
                "`{}` is not a chart location: use oci://…, https://…/CHART or ./PATH inside the driver",
                chart.location
            ),
        ),
        Some(ChartSource::Bundled(dir)) => {
            let chart_yaml = format!("{dir}/Chart.yaml");
            if !bundle.files.contains(&chart_yaml) {
                c.error(
                    "spec.helm.main.location",
                    format!("the driver has no chart at `{dir}` ({chart_yaml} is missing)"),
                );
            }
        }
        Some(_) => {}
    }
}

fn check_components(c: &mut Check<'_>, spec: &DriverSpec, bundle: &Bundle<'_>) {
    for (name, component) in &spec.components {
        let path = format!("spec.components.{name}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            c.error(
                &path,
                format!("component name `{name}` may contain only letters, digits, `-` and `_`"),
            );
        }
        for (key, value) in &component.identifier.label {
            let field = format!("{path}.identifier.label.{key}");
            if let Some(problem) = label_key_problem(key).or_else(|| label_value_problem(value)) {
                c.error(&field, problem);
            }
        }
        let Some(backup) = &component.backup else {
            continue;
        };
        let bpath = format!("{path}.backup");
        match backup.kind {
            BackupKind::Disk if backup.volumes.is_empty() => c.error(
                &format!("{bpath}.kind"),
                "a `disk` backup names its pod-template volumes: `volume: NAME` or `volumes: [NAMES]`",
            ),
            BackupKind::Disk => {}
            BackupKind::Action => match &backup.location {
                None => c.error(
                    &format!("{bpath}.kind"),
                    "an `action` backup names its function: `location: \"actions.py::fn\"`",
                ),
                Some(loc) => {
                    check_location(c, &format!("{bpath}.location"), loc, bundle);
                    if let Some(restore) = &backup.restore_location {
                        check_location(c, &format!("{bpath}.restore_location"), restore, bundle);
                    }
                }
            },
            _ if !backup.volumes.is_empty() => c.warning(
                &format!("{bpath}.volumes"),
                format!("a `{}` backup dumps the database; the volume names are ignored", backup.kind),
            ),
            _ => {}
        }
    }
}

fn component_names(spec: &DriverSpec) -> Vec<&str> {
    spec.components.keys().map(String::as_str).collect()
}

fn check_component_ref(c: &mut Check<'_>, spec: &DriverSpec, field: &str, name: &str) {
    if !spec.components.contains_key(name) {
        c.unknown_ref(field, "component", name, &component_names(spec));
    }
}

fn check_services(c: &mut Check<'_>, spec: &DriverSpec) {
    c.unique(
        "spec.services",
        spec.services.iter().map(|s| s.name.as_str()),
        "service",
    );
    for (i, service) in spec.services.iter().enumerate() {
        let path = c.item("spec.services", i);
        if let Some(problem) = dns1123_label_problem(&service.name) {
            c.error(
                &format!("{path}.name"),
                format!("`{}` {problem}", service.name),
            );
        } else if service.name.len() > 54 {
            // `<name>-<8 hex>` must stay a DNS label of at most 63 characters.
            c.error(
                &format!("{path}.name"),
                "at most 54 characters, so that its host name fits a DNS label",
            );
        }
        check_component_ref(c, spec, &format!("{path}.component"), &service.component);
    }
}

fn check_parameters(c: &mut Check<'_>, spec: &DriverSpec) {
    c.unique(
        "spec.parameters",
        spec.parameters.iter().map(|p| p.name.as_str()),
        "parameter",
    );
    for (i, p) in spec.parameters.iter().enumerate() {
        let path = c.item("spec.parameters", i);
        let identifier = p
            .name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
            && p.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !identifier {
            c.warning(
                &format!("{path}.name"),
                format!(
                    "`{}` is not an identifier; templates must write parameters['{}'] instead of parameters.{}",
                    p.name, p.name, p.name
                ),
            );
        }
        if p.kind == ParameterKind::Enum {
            if p.values.is_empty() {
                c.error(
                    &format!("{path}.values"),
                    "an enum parameter lists its `values`",
                );
            }
            let mut seen = HashSet::new();
            for (j, v) in p.values.iter().enumerate() {
                if !seen.insert(v.to_string()) {
                    c.error(
                        &format!("{path}.values[{j}]"),
                        format!("{v} is listed twice"),
                    );
                }
            }
        } else if !p.values.is_empty() {
            c.warning(
                &format!("{path}.values"),
                format!(
                    "only enum parameters have `values`; this one is `{}`",
                    p.kind
                ),
            );
        }
        if let Some(default) = &p.default
            && let Err(problem) = check_value(p, default)
        {
            c.error(&format!("{path}.default"), problem);
        }
    }
}

fn check_env_vars(c: &mut Check<'_>, spec: &DriverSpec) {
    c.unique(
        "spec.env_vars",
        spec.env_vars.iter().map(|e| e.name.as_str()),
        "environment variable",
    );
    for (i, var) in spec.env_vars.iter().enumerate() {
        let path = c.item("spec.env_vars", i);
        let valid = var
            .name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
            && var
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !valid {
            c.error(
                &format!("{path}.name"),
                format!("`{}` is not an environment variable name", var.name),
            );
        }
        if var.level == EnvVarLevel::Component && var.components.is_empty() {
            c.error(
                &format!("{path}.components"),
                "a `component` level variable lists the components it applies to",
            );
        }
        for (j, component) in var.components.iter().enumerate() {
            check_component_ref(c, spec, &format!("{path}.components[{j}]"), component);
        }
    }
}

fn check_container_overrides(c: &mut Check<'_>, spec: &DriverSpec) {
    let mut seen = HashSet::new();
    for (i, o) in spec.container_overrides.iter().enumerate() {
        let path = c.item("spec.container_overrides", i);
        check_component_ref(c, spec, &format!("{path}.component"), &o.component);
        if !seen.insert((&o.component, &o.container)) {
            c.error(
                &format!("{path}.component"),
                format!("component `{}` already has an override entry", o.component),
            );
        }
        if !o.command && !o.args {
            c.warning(
                &path,
                "allows neither `command` nor `args`; it has no effect",
            );
        }
    }
}

fn check_actions(c: &mut Check<'_>, spec: &DriverSpec, bundle: &Bundle<'_>) {
    c.unique(
        "spec.actions",
        spec.actions.iter().map(|a| a.name.as_str()),
        "action",
    );
    let mut cores: BTreeMap<Hook, &str> = BTreeMap::new();
    for (i, action) in spec.actions.iter().enumerate() {
        let path = c.item("spec.actions", i);
        if action.mode == Mode::Core
            && let Some(first) = cores.insert(action.hook, &action.name)
        {
            c.error(
                &format!("{path}.mode"),
                format!(
                    "hook `{}` already has a core action (`{first}`); a hook has at most one",
                    action.hook
                ),
            );
        }
        if let Some(location) = &action.location {
            check_location(c, &format!("{path}.location"), location, bundle);
        }
        for (j, step) in action.steps.iter().enumerate() {
            let step_path = c.item(&format!("{path}.steps"), j);
            check_step(c, spec, &step_path, step);
        }
    }
}

fn check_step(c: &mut Check<'_>, spec: &DriverSpec, path: &str, step: &Step) {
    match step {
        Step::Stop(names) | Step::Start(names) | Step::WaitReady(names) => {
            let kind = match step {
                Step::Stop(_) => "stop",
                Step::Start(_) => "start",
                _ => "wait_ready",
            };
            for (k, name) in names.iter().enumerate() {
                check_component_ref(c, spec, &format!("{path}.{kind}[{k}]"), name);
            }
        }
        Step::Exec { component, .. } => {
            check_component_ref(c, spec, &format!("{path}.exec.component"), component);
        }
        Step::HttpCheck { service, .. } => match spec.service(service) {
            None => {
                let known: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
                c.unknown_ref(
                    &format!("{path}.http_check.service"),
                    "service",
                    service,
                    &known,
                );
            }
            Some(s) if s.kind != ServiceKind::Http => c.error(
                &format!("{path}.http_check.service"),
                format!("service `{service}` is `{}`, not `http`", s.kind),
            ),
            Some(_) => {}
        },
    }
}

fn check_location(c: &mut Check<'_>, field: &str, location: &Location, bundle: &Bundle<'_>) {
    if location.file != ACTIONS_FILE {
        c.error(
            field,
            format!("actions live in `{ACTIONS_FILE}`, not `{}`", location.file),
        );
        return;
    }
    let Some(source) = bundle.actions else {
        c.error(
            field,
            format!("`{location}` needs {ACTIONS_FILE}, and the driver has none"),
        );
        return;
    };
    let functions = top_level_functions(source);
    if !functions.contains_key(&location.function) {
        let known: Vec<&str> = functions.keys().map(String::as_str).collect();
        let hint = did_you_mean(&location.function, known.iter().copied())
            .map(|k| format!("did you mean `{k}`?"));
        c.d.push(
            Severity::Error,
            c.positions.at(field),
            field,
            format!(
                "{ACTIONS_FILE} defines no top-level function `{}`",
                location.function
            ),
            hint,
        );
    }
}
