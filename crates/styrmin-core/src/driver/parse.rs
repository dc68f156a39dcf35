//! `driver.styrmin.yml` → `ApplicationDriver`: shape and type checks, every problem reported
//! with its position. Cross-references (does this service's component exist?) are checked
//! afterwards in `validate`, on the typed model.

use std::collections::BTreeMap;

use super::model::*;
use std::ops::{Deref, DerefMut};

use crate::diagnostics::Diagnostics;
use crate::version::VersionSpec;
use crate::yaml::read::{
    self, Fields, Unknown, boolean, index, integer, map, one_of, opt_string, seq, string,
    string_list, string_map,
};
use crate::yaml::{Node, NodeKind, Pos};

/// Where each named item was written, so that later checks can point at it.
#[derive(Debug, Default)]
pub struct Positions {
    pub fields: BTreeMap<String, Pos>,
    /// For each list, the source index of every item that parsed: an item that failed is
    /// left out of the typed list, and later checks must still name the right one.
    kept: BTreeMap<String, Vec<usize>>,
}

impl Positions {
    /// The path of a typed list item, `spec.actions[3]`, as written in the file.
    pub fn item(&self, list: &str, typed_index: usize) -> String {
        let source = self
            .kept
            .get(list)
            .and_then(|kept| kept.get(typed_index))
            .copied()
            .unwrap_or(typed_index);
        index(list, source)
    }

    pub fn at(&self, field: &str) -> Option<Pos> {
        // The closest recorded ancestor stands in for fields that were not written.
        let mut path = field;
        loop {
            if let Some(pos) = self.fields.get(path) {
                return Some(*pos);
            }
            path = &path[..path.rfind(['.', '['])?];
        }
    }

    /// Records `node` and everything below it. A mapping entry is recorded at its key, where
    /// editors should jump for "missing field" and "wrong type" alike.
    /// Keys written twice in one mapping are reported here, where their path is known.
    fn record(&mut self, field: &str, node: &Node, d: &mut Diagnostics) {
        self.fields.entry(field.to_owned()).or_insert(node.pos);
        match &node.kind {
            NodeKind::Map(entries) => {
                for (i, (k, v)) in entries.iter().enumerate() {
                    let Some(key) = k.scalar_text() else { continue };
                    let child = read::join(field, key);
                    if let Some((first, _)) = entries[..i]
                        .iter()
                        .find(|(other, _)| other.scalar_text() == Some(key))
                    {
                        d.error(
                            Some(k.pos),
                            &child,
                            format!(
                                "`{key}` is set twice; the first is at line {}",
                                first.pos.line
                            ),
                        );
                        continue;
                    }
                    self.fields.insert(child.clone(), k.pos);
                    self.record(&child, v, d);
                }
            }
            NodeKind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.record(&index(field, i), item, d);
                }
            }
            NodeKind::Scalar { .. } => {}
        }
    }
}

/// The diagnostics of the file plus the list bookkeeping of `Positions`; derefs to
/// `Diagnostics` so the field readers take it as it is.
pub struct Cx<'a> {
    d: &'a mut Diagnostics,
    kept: BTreeMap<String, Vec<usize>>,
}

impl Deref for Cx<'_> {
    type Target = Diagnostics;
    fn deref(&self) -> &Diagnostics {
        self.d
    }
}

impl DerefMut for Cx<'_> {
    fn deref_mut(&mut self) -> &mut Diagnostics {
        self.d
    }
}

/// Reads the document. Returns the model when its shape is complete enough to validate
/// further (type errors may still have been reported).
pub fn parse_spec(
    root: &Node,
    d: &mut Diagnostics,
    positions: &mut Positions,
) -> Option<ApplicationDriver> {
    positions.record("", root, d);
    let mut cx = Cx {
        d,
        kept: BTreeMap::new(),
    };
    let driver = parse_document(root, &mut cx);
    positions.kept = cx.kept;
    driver
}

fn parse_document(root: &Node, d: &mut Cx<'_>) -> Option<ApplicationDriver> {
    let mut top = map(root, "", d)?;
    let api_version = top.require("apiVersion", d).and_then(|n| {
        let v = string(n, "apiVersion", d)?;
        if v != API_VERSION {
            d.error(
                Some(n.pos),
                "apiVersion",
                format!("expected `{API_VERSION}`, found `{v}`"),
            );
        }
        Some(v)
    });
    let kind = top.require("kind", d).and_then(|n| {
        let v = string(n, "kind", d)?;
        if v != KIND {
            d.error(
                Some(n.pos),
                "kind",
                format!("expected `{KIND}`, found `{v}`"),
            );
        }
        Some(v)
    });
    let metadata = top
        .require("metadata", d)
        .and_then(|n| parse_metadata(n, d));
    let spec = top.require("spec", d).and_then(|n| parse_driver_spec(n, d));
    top.finish(d, Unknown::Warn);
    Some(ApplicationDriver {
        api_version: api_version?,
        kind: kind?,
        metadata: metadata?,
        spec: spec?,
    })
}

fn parse_metadata(node: &Node, d: &mut Cx<'_>) -> Option<Metadata> {
    let mut f = map(node, "metadata", d)?;
    let name = f.require("name", d).and_then(|n| {
        let name = string(n, "metadata.name", d)?;
        if let Some(problem) = crate::naming::dns1123_label_problem(&name) {
            d.error(Some(n.pos), "metadata.name", format!("`{name}` {problem}"));
        }
        Some(name)
    });
    f.finish(d, Unknown::Warn);
    Some(Metadata { name: name? })
}

fn parse_driver_spec(node: &Node, d: &mut Cx<'_>) -> Option<DriverSpec> {
    let mut f = map(node, "spec", d)?;
    let version = f
        .require("version", d)
        .and_then(|n| non_empty(n, "spec.version", d));
    let supported_versions = f
        .require("supported_versions", d)
        .and_then(|n| parse_version_spec(n, d));
    let default_version = opt_string(f.get("default_version"), "spec.default_version", d);
    let info = f
        .get("info")
        .filter(|n| !n.is_null())
        .map(|n| parse_info(n, d));
    let helm = f.require("helm", d).and_then(|n| parse_helm(n, d));
    let components = f
        .require("components", d)
        .and_then(|n| parse_components(n, d));
    let services = list(f.get("services"), "spec.services", d, parse_service);
    let parameters = list(f.get("parameters"), "spec.parameters", d, parse_parameter);
    let env_vars = list(f.get("env_vars"), "spec.env_vars", d, parse_env_var);
    let container_overrides = list(
        f.get("container_overrides"),
        "spec.container_overrides",
        d,
        parse_container_override,
    );
    let actions = list(f.get("actions"), "spec.actions", d, parse_action);
    f.finish(d, Unknown::Reject);
    Some(DriverSpec {
        version: version?,
        supported_versions: supported_versions?,
        default_version,
        info: info.flatten().unwrap_or_default(),
        helm: helm?,
        components: components?,
        services,
        parameters,
        env_vars,
        container_overrides,
        actions,
    })
}

fn non_empty(node: &Node, path: &str, d: &mut Diagnostics) -> Option<String> {
    let text = string(node, path, d)?;
    if text.trim().is_empty() {
        d.error(Some(node.pos), path, "must not be empty");
        return None;
    }
    Some(text)
}

fn list<T>(
    node: Option<&Node>,
    path: &str,
    d: &mut Cx<'_>,
    parse: fn(&Node, &str, &mut Cx<'_>) -> Option<T>,
) -> Vec<T> {
    let mut kept = Vec::new();
    let mut out = Vec::new();
    for (i, item) in seq(node, path, d).iter().enumerate() {
        if let Some(parsed) = parse(item, &index(path, i), d) {
            kept.push(i);
            out.push(parsed);
        }
    }
    d.kept.insert(path.to_owned(), kept);
    out
}

fn parse_version_spec(node: &Node, d: &mut Cx<'_>) -> Option<VersionSpec> {
    let path = "spec.supported_versions";
    let text = string(node, path, d)?;
    VersionSpec::parse(&text)
        .map_err(|e| d.error(Some(node.pos), path, e.to_string()))
        .ok()
}

fn parse_info(node: &Node, d: &mut Cx<'_>) -> Option<Info> {
    let mut f = map(node, "spec.info", d)?;
    let description = opt_string(f.get("description"), "spec.info.description", d);
    let authors = string_list(f.get("authors"), "spec.info.authors", d);
    let license = opt_string(f.get("license"), "spec.info.license", d);
    let links = list(f.get("links"), "spec.info.links", d, |n, path, d| {
        let mut f = map(n, path, d)?;
        let link = f
            .require("link", d)
            .and_then(|n| string(n, &join(path, "link"), d));
        let url = f
            .require("url", d)
            .and_then(|n| string(n, &join(path, "url"), d));
        f.finish(d, Unknown::Warn);
        Some(Link {
            link: link?,
            url: url?,
        })
    });
    f.finish(d, Unknown::Warn);
    Some(Info {
        description,
        authors,
        license,
        links,
    })
}

fn join(path: &str, key: &str) -> String {
    read::join(path, key)
}

fn parse_helm(node: &Node, d: &mut Cx<'_>) -> Option<Helm> {
    let mut f = map(node, "spec.helm", d)?;
    let main = f.require("main", d).and_then(|n| {
        let path = "spec.helm.main";
        let mut f = map(n, path, d)?;
        let location = f
            .require("location", d)
            .and_then(|n| string(n, &join(path, "location"), d));
        let version = f
            .require("version", d)
            .and_then(|n| non_empty(n, &join(path, "version"), d));
        f.finish(d, Unknown::Warn);
        Some(ChartRef {
            location: location?,
            version: version?,
        })
    });
    f.finish(d, Unknown::Warn);
    Some(Helm { main: main? })
}

fn parse_components(node: &Node, d: &mut Cx<'_>) -> Option<BTreeMap<String, Component>> {
    let path = "spec.components";
    let NodeKind::Map(entries) = &node.kind else {
        d.error(
            Some(node.pos),
            path,
            format!(
                "expected a mapping of component names, found {}",
                node.describe()
            ),
        );
        return None;
    };
    if entries.is_empty() {
        d.error(
            Some(node.pos),
            path,
            "a driver needs at least one component",
        );
    }
    let mut components = BTreeMap::new();
    for (key, value) in entries {
        let Some(name) = key.scalar_text() else {
            continue;
        };
        if let Some(component) = parse_component(value, &join(path, name), d) {
            components.insert(name.to_owned(), component);
        }
    }
    Some(components)
}

fn parse_component(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<Component> {
    let mut f = map(node, path, d)?;
    let identifier = f.require("identifier", d).and_then(|n| {
        let id_path = join(path, "identifier");
        let mut f = map(n, &id_path, d)?;
        let label = f.require("label", d).map(|n| {
            let label_path = join(&id_path, "label");
            let labels = string_map(n, &label_path, d);
            if labels.is_empty() && matches!(n.kind, NodeKind::Map(_)) {
                d.error(
                    Some(n.pos),
                    &label_path,
                    "a component needs at least one label to be found by",
                );
            }
            labels
        });
        f.finish(d, Unknown::Warn);
        Some(Identifier { label: label? })
    });
    let backup = f
        .get("backup")
        .filter(|n| !n.is_null())
        .and_then(|n| parse_backup(n, &join(path, "backup"), d));
    f.finish(d, Unknown::Warn);
    Some(Component {
        identifier: identifier?,
        backup,
    })
}

fn parse_backup(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<Backup> {
    let mut f = map(node, path, d)?;
    let kind = f
        .require("kind", d)
        .and_then(|n| one_of(n, &join(path, "kind"), BackupKind::ALL, d));
    let mut volumes = Vec::new();
    if let Some(one) = opt_string(f.get("volume"), &join(path, "volume"), d) {
        volumes.push(one);
    }
    volumes.extend(string_list(f.get("volumes"), &join(path, "volumes"), d));
    let location = location_field(&mut f, "location", path, d);
    let restore_location = location_field(&mut f, "restore_location", path, d);
    f.finish(d, Unknown::Warn);
    Some(Backup {
        kind: kind?,
        volumes,
        location,
        restore_location,
    })
}

fn location_field(
    f: &mut Fields<'_>,
    key: &'static str,
    path: &str,
    d: &mut Cx<'_>,
) -> Option<Location> {
    let node = f.get(key).filter(|n| !n.is_null())?;
    let field = join(path, key);
    let text = string(node, &field, d)?;
    let parsed = Location::parse(&text);
    if parsed.is_none() {
        d.error(
            Some(node.pos),
            &field,
            format!("`{text}` is not a location of the form `actions.py::function`"),
        );
    }
    parsed
}

fn parse_service(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<Service> {
    let mut f = map(node, path, d)?;
    let name = f
        .require("name", d)
        .and_then(|n| string(n, &join(path, "name"), d));
    let kind = f
        .require("kind", d)
        .and_then(|n| one_of(n, &join(path, "kind"), ServiceKind::ALL, d));
    let scope = f
        .require("scope", d)
        .and_then(|n| one_of(n, &join(path, "scope"), ServiceScope::ALL, d));
    let port = f
        .require("port", d)
        .and_then(|n| port(n, &join(path, "port"), d));
    let component = f
        .require("component", d)
        .and_then(|n| string(n, &join(path, "component"), d));
    f.finish(d, Unknown::Warn);
    Some(Service {
        name: name?,
        kind: kind?,
        scope: scope?,
        port: port?,
        component: component?,
    })
}

fn port(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<u16> {
    let value = integer(node, path, d)?;
    match u16::try_from(value) {
        Ok(p) if p > 0 => Some(p),
        _ => {
            d.error(
                Some(node.pos),
                path,
                format!("port {value} is outside 1..65535"),
            );
            None
        }
    }
}

fn parse_parameter(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<Parameter> {
    let mut f = map(node, path, d)?;
    let name = f
        .require("name", d)
        .and_then(|n| string(n, &join(path, "name"), d));
    let label = opt_string(f.get("label"), &join(path, "label"), d);
    let description = opt_string(f.get("description"), &join(path, "description"), d);
    let kind = f
        .require("kind", d)
        .and_then(|n| one_of(n, &join(path, "kind"), ParameterKind::ALL, d));
    let values_path = join(path, "values");
    let values = seq(f.get("values"), &values_path, d)
        .iter()
        .enumerate()
        .filter_map(|(i, n)| scalar_value(n, &index(&values_path, i), d))
        .collect();
    // An explicit `default: null` is kept apart from no default at all: Jinja sees None.
    let default = f.get("default").map(|n| n.to_json());
    if let Some(n) = f.get("default")
        && !matches!(n.kind, NodeKind::Scalar { .. })
    {
        d.error(
            Some(n.pos),
            &join(path, "default"),
            format!("a default must be a single value, found {}", n.describe()),
        );
    }
    f.finish(d, Unknown::Warn);
    Some(Parameter {
        name: name?,
        label,
        description,
        kind: kind?,
        values,
        default,
    })
}

fn scalar_value(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<serde_json::Value> {
    match &node.kind {
        NodeKind::Scalar { .. } if !node.is_null() => Some(node.to_json()),
        _ => {
            d.error(
                Some(node.pos),
                path,
                format!("expected a single value, found {}", node.describe()),
            );
            None
        }
    }
}

fn parse_env_var(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<EnvVarDecl> {
    let mut f = map(node, path, d)?;
    let name = f
        .require("name", d)
        .and_then(|n| string(n, &join(path, "name"), d));
    let description = opt_string(f.get("description"), &join(path, "description"), d);
    let level = match f.get("level").filter(|n| !n.is_null()) {
        Some(n) => one_of(n, &join(path, "level"), EnvVarLevel::ALL, d),
        None => Some(EnvVarLevel::Component),
    };
    let components = string_list(f.get("components"), &join(path, "components"), d);
    f.finish(d, Unknown::Warn);
    Some(EnvVarDecl {
        name: name?,
        description,
        level: level?,
        components,
    })
}

fn parse_container_override(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<ContainerOverride> {
    let mut f = map(node, path, d)?;
    let component = f
        .require("component", d)
        .and_then(|n| string(n, &join(path, "component"), d));
    let container = opt_string(f.get("container"), &join(path, "container"), d);
    let mut flag = |key: &'static str, d: &mut Diagnostics| match f.get(key) {
        None => Some(false),
        Some(n) => boolean(n, &join(path, key), d),
    };
    let command = flag("command", d);
    let args = flag("args", d);
    let description = opt_string(f.get("description"), &join(path, "description"), d);
    f.finish(d, Unknown::Warn);
    Some(ContainerOverride {
        component: component?,
        container,
        command: command?,
        args: args?,
        description,
    })
}

fn parse_action(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<Action> {
    let mut f = map(node, path, d)?;
    let name = f
        .require("name", d)
        .and_then(|n| string(n, &join(path, "name"), d));
    let hook = f
        .require("hook", d)
        .and_then(|n| one_of(n, &join(path, "hook"), Hook::ALL, d));
    let mode = f
        .require("mode", d)
        .and_then(|n| one_of(n, &join(path, "mode"), Mode::ALL, d));
    let location = location_field(&mut f, "location", path, d);
    let steps_node = f.get("steps");
    let steps = list(steps_node, &join(path, "steps"), d, parse_step);
    let description = opt_string(f.get("description"), &join(path, "description"), d);
    let timeout_seconds = match f.get("timeout_seconds") {
        Some(n) => integer(n, &join(path, "timeout_seconds"), d).and_then(|t| {
            if t <= 0 {
                d.error(
                    Some(n.pos),
                    &join(path, "timeout_seconds"),
                    "must be positive",
                );
            }
            u64::try_from(t).ok()
        }),
        None => None,
    };
    let has_location = f.get("location").is_some_and(|n| !n.is_null());
    match (has_location, steps_node.is_some()) {
        (true, true) => d.error(
            Some(f.node.pos),
            path,
            "an action has either `location` or `steps`, not both",
        ),
        (false, false) => d.error(
            Some(f.node.pos),
            path,
            "an action needs `location: \"actions.py::function\"` or `steps:`",
        ),
        _ => {}
    }
    if let Some(n) = steps_node.filter(|_| steps.is_empty())
        && (matches!(&n.kind, NodeKind::Seq(items) if items.is_empty()) || n.is_null())
    {
        d.error(Some(n.pos), &join(path, "steps"), "`steps` is empty");
    }
    f.finish(d, Unknown::Warn);
    Some(Action {
        name: name?,
        hook: hook?,
        mode: mode?,
        location,
        steps,
        description,
        timeout_seconds,
    })
}

const STEP_KINDS: &[&str] = &["stop", "start", "exec", "wait_ready", "http_check"];

fn parse_step(node: &Node, path: &str, d: &mut Cx<'_>) -> Option<Step> {
    let NodeKind::Map(entries) = &node.kind else {
        d.error(
            Some(node.pos),
            path,
            format!(
                "a step is a mapping with one of: {}; found {}",
                STEP_KINDS.join(", "),
                node.describe()
            ),
        );
        return None;
    };
    let [(key, value)] = entries.as_slice() else {
        d.error(
            Some(node.pos),
            path,
            format!("a step has exactly one of: {}", STEP_KINDS.join(", ")),
        );
        return None;
    };
    let kind = key.scalar_text().unwrap_or_default();
    let field = join(path, kind);
    let names = |d: &mut Diagnostics| {
        let names = string_list(Some(value), &field, d);
        if names.is_empty() {
            d.error(Some(value.pos), &field, "name at least one component");
        }
        names
    };
    match kind {
        "stop" => Some(Step::Stop(names(d))),
        "start" => Some(Step::Start(names(d))),
        "wait_ready" => Some(Step::WaitReady(names(d))),
        "exec" => {
            let mut f = map(value, &field, d)?;
            let component = f
                .require("component", d)
                .and_then(|n| string(n, &join(&field, "component"), d));
            let command = f.require("command", d).and_then(|n| {
                let cmd_path = join(&field, "command");
                match &n.kind {
                    NodeKind::Seq(_) => {
                        let argv = string_list(Some(n), &cmd_path, d);
                        (!argv.is_empty()).then_some(ExecCommand::Argv(argv))
                    }
                    _ => string(n, &cmd_path, d).map(ExecCommand::Shell),
                }
            });
            f.finish(d, Unknown::Warn);
            Some(Step::Exec {
                component: component?,
                command: command?,
            })
        }
        "http_check" => {
            let mut f = map(value, &field, d)?;
            let service = f
                .require("service", d)
                .and_then(|n| string(n, &join(&field, "service"), d));
            let path_value = match f.get("path") {
                Some(n) => string(n, &join(&field, "path"), d),
                None => Some("/".to_owned()),
            };
            if let (Some(p), Some(n)) = (&path_value, f.get("path"))
                && !p.starts_with('/')
            {
                d.error(Some(n.pos), &join(&field, "path"), "a path starts with `/`");
            }
            let expect_status = match f.get("expect_status") {
                Some(n) => integer(n, &join(&field, "expect_status"), d).and_then(|s| {
                    let ok = (100..=599).contains(&s);
                    if !ok {
                        d.error(
                            Some(n.pos),
                            &join(&field, "expect_status"),
                            format!("{s} is not an HTTP status code"),
                        );
                    }
                    ok.then_some(s as u16)
                }),
                None => Some(200),
            };
            f.finish(d, Unknown::Warn);
            Some(Step::HttpCheck {
                service: service?,
                path: path_value?,
                expect_status: expect_status?,
            })
        }
        other => {
            let hint = crate::diagnostics::did_you_mean(other, STEP_KINDS.iter().copied())
                .map(|k| format!("did you mean `{k}`?"));
            d.push(
                crate::diagnostics::Severity::Error,
                Some(key.pos),
                &field,
                format!(
                    "unknown step `{other}`; steps are {}",
                    STEP_KINDS.join(", ")
                ),
                hint,
            );
            None
        }
    }
}
