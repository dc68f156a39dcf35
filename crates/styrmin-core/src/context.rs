//! The Context (`GlobalContext`): everything a driver needs but does not contain, resolved
//! once per Instance and frozen. Values templates, actions and the `StyrminDeployment` all
//! read this one structure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::driver::{ApplicationDriver, ChartRef, ServiceKind, ServiceScope};
use crate::field_error::{FieldError, FieldErrors};
use crate::naming;
use crate::parameters;
use crate::version::Version;

pub type Config = Map<String, Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalContext {
    pub cluster: ScopeContext,
    pub environment: EnvironmentContext,
    pub deployment: ScopeContext,
    pub instance: InstanceContext,
    pub app: AppContext,
    pub components: BTreeMap<String, ComponentContext>,
    pub parameters: BTreeMap<String, Value>,
    pub services: BTreeMap<String, ServiceContext>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScopeContext {
    pub id: String,
    pub name: String,
    pub config: Config,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentContext {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub config: Config,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceContext {
    pub id: String,
    pub namespace: String,
    pub release_name: String,
    /// cluster ⊕ environment ⊕ deployment config; `ingress_class` only without a dedicated
    /// ingress.
    pub config: Config,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppContext {
    /// The driver's name.
    pub name: String,
    /// The application version.
    pub version: String,
    pub chart: ChartRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentContext {
    pub labels: BTreeMap<String, String>,
    pub env_vars: Vec<EnvVar>,
    pub command: Vec<String>,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceContext {
    pub name: String,
    pub kind: ServiceKind,
    pub scope: ServiceScope,
    pub port: u16,
    pub component: String,
    /// In-cluster DNS name.
    pub host: String,
    /// Empty when the cluster has no `fqdn_suffix`.
    pub primary_fqdn: String,
    pub human_readable_fqdn: String,
}

/// A cluster, environment or deployment as the Context sees it.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub config: &'a Config,
}

/// Per-component settings a user gives a deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ComponentSettings {
    #[serde(default)]
    pub env_vars: Vec<EnvVar>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub args: Option<Vec<String>>,
}

/// Everything the Context is made from.
pub struct ContextInput<'a> {
    pub cluster: Scope<'a>,
    pub environment: Scope<'a>,
    pub deployment: Scope<'a>,
    pub instance_id: &'a str,
    pub driver: &'a ApplicationDriver,
    pub app_version: &'a str,
    pub parameters: &'a BTreeMap<String, Value>,
    pub components: &'a BTreeMap<String, ComponentSettings>,
}

/// Maps merge key by key, recursively; anything else in `overlay` replaces `base`.
pub fn deep_merge(base: &mut Config, overlay: &Config) {
    for (key, value) in overlay {
        match (base.get_mut(key), value) {
            (Some(Value::Object(b)), Value::Object(o)) => deep_merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The longest a backup or restore may take when config sets `backup_deadline_seconds`.
pub const MAX_BACKUP_DEADLINE_SECONDS: u64 = 86_400;

/// Checks the config keys Styrmin itself reads; every other key passes to templates.
pub fn check_config(scope: &str, config: &Config) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let field = |key: &str| format!("{scope}.config.{key}");
    let mut expect = |key: &str, ok: bool, what: &str| {
        if !ok {
            errors.push(FieldError::new(field(key), format!("must be {what}")));
        }
    };
    for (key, value) in config {
        match key.as_str() {
            "fqdn_suffix" => expect(
                key,
                value.as_str().is_some_and(|s| {
                    !s.is_empty()
                        && s.split('.')
                            .all(|l| naming::dns1123_label_problem(l).is_none())
                }),
                "a DNS domain such as apps.example.com",
            ),
            "ingress_class" => expect(key, value.is_string(), "a string"),
            "namespace" => expect(
                key,
                value
                    .as_str()
                    .is_some_and(|s| naming::dns1123_label_problem(s).is_none()),
                "a valid namespace name (lowercase letters, digits and `-`)",
            ),
            "dedicated_ingress" => expect(
                key,
                value.is_object(),
                "an object (e.g. {\"service\": {\"annotations\": {}}})",
            ),
            "standard_storage" => expect(
                key,
                value
                    .as_object()
                    .is_some_and(|o| o.get("storage_class").is_none_or(Value::is_string)),
                "an object whose storage_class is a string",
            ),
            "backup_deadline_seconds" => expect(
                key,
                value
                    .as_u64()
                    .is_some_and(|n| (1..=MAX_BACKUP_DEADLINE_SECONDS).contains(&n)),
                "a whole number of seconds from 1 to 86400",
            ),
            "ip_whitelist" => expect(
                key,
                value
                    .as_array()
                    .is_some_and(|items| items.iter().all(|i| i.as_str().is_some_and(is_cidr))),
                "a list of CIDRs such as [\"10.0.0.0/8\", \"192.0.2.1/32\"]",
            ),
            _ => {}
        }
    }
    errors
}

fn is_cidr(text: &str) -> bool {
    let (addr, prefix) = text.split_once('/').unwrap_or((text, ""));
    match addr.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            prefix.is_empty() || prefix.parse::<u8>().is_ok_and(|p| p <= max)
        }
        Err(_) => false,
    }
}

/// Builds the Context. Every wrong input is reported, each with its field.
pub fn build(input: &ContextInput<'_>) -> Result<GlobalContext, FieldErrors> {
    let mut errors = Vec::new();
    for (scope, s) in [
        ("cluster", input.cluster),
        ("environment", input.environment),
        ("deployment", input.deployment),
    ] {
        errors.extend(check_config(scope, s.config));
    }
    let spec = &input.driver.spec;

    match Version::parse(input.app_version) {
        Err(e) => errors.push(FieldError::new("app_version", e.to_string())),
        Ok(v) if !spec.supported_versions.matches(&v) => errors.push(FieldError::new(
            "app_version",
            format!(
                "{} is outside the versions driver {} {} supports ({})",
                input.app_version,
                input.driver.name(),
                spec.version,
                spec.supported_versions
            ),
        )),
        Ok(_) => {}
    }

    let release_name = input.deployment.name.to_owned();
    if let Some(problem) = naming::dns1123_label_problem(&release_name) {
        errors.push(FieldError::new(
            "deployment.name",
            format!("`{release_name}` {problem}"),
        ));
    } else if release_name.len() > naming::MAX_RELEASE_NAME {
        errors.push(FieldError::new(
            "deployment.name",
            format!(
                "`{release_name}` is {} characters; it becomes the Helm release name, which allows at most {}",
                release_name.len(),
                naming::MAX_RELEASE_NAME
            ),
        ));
    }
    if let Some(problem) = naming::dns1123_label_problem(input.environment.name) {
        errors.push(FieldError::new(
            "environment.name",
            format!("`{}` {problem}", input.environment.name),
        ));
    }

    let mut merged = input.cluster.config.clone();
    deep_merge(&mut merged, input.environment.config);
    let namespace = merged
        .get("namespace")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| naming::default_namespace(input.environment.name));
    if naming::dns1123_label_problem(&namespace).is_some()
        && !errors.iter().any(|e| e.field.ends_with(".namespace"))
    {
        errors.push(FieldError::new(
            "environment.namespace",
            format!("`{namespace}` is not a valid namespace name"),
        ));
    }
    deep_merge(&mut merged, input.deployment.config);
    if merged
        .get("dedicated_ingress")
        .is_some_and(|v| !v.is_null())
    {
        merged.remove("ingress_class");
    }

    let parameters = match parameters::resolve(&spec.parameters, input.parameters) {
        Ok(p) => p,
        Err(FieldErrors(e)) => {
            errors.extend(e);
            BTreeMap::new()
        }
    };
    let components = build_components(input, &release_name, &mut errors);

    let fqdn_suffix = merged
        .get("fqdn_suffix")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // A wrong release name is reported once, not again for every name made from it.
    let release_ok = !errors.iter().any(|e| e.field == "deployment.name");
    let services = spec
        .services
        .iter()
        .map(|s| {
            let name = naming::service_name(&release_name, &s.name);
            if release_ok && let Some(problem) = naming::dns1123_label_problem(&name) {
                errors.push(FieldError::new(
                    format!("services.{}", s.name),
                    format!(
                        "its Service name `{name}` (release `{release_name}` + service) {problem}"
                    ),
                ));
            }
            let primary_fqdn = if fqdn_suffix.is_empty() {
                String::new()
            } else {
                naming::primary_fqdn(&s.name, input.deployment.id, &fqdn_suffix)
            };
            let human_readable_fqdn = if fqdn_suffix.is_empty() {
                String::new()
            } else {
                naming::human_readable_fqdn(&name, input.environment.name, &fqdn_suffix)
            };
            if release_ok
                && let Some(host) = human_readable_fqdn
                    .split('.')
                    .next()
                    .filter(|h| !h.is_empty())
                && let Some(problem) = naming::dns1123_label_problem(host)
            {
                errors.push(FieldError::new(
                    format!("services.{}", s.name),
                    format!("its host name `{host}` (Service `{name}` + environment) {problem}"),
                ));
            }
            let context = ServiceContext {
                host: naming::service_host(&name, &namespace),
                name,
                kind: s.kind,
                scope: s.scope,
                port: s.port,
                component: s.component.clone(),
                primary_fqdn,
                human_readable_fqdn,
            };
            (s.name.clone(), context)
        })
        .collect();

    if !errors.is_empty() {
        return Err(FieldErrors(errors));
    }
    Ok(GlobalContext {
        cluster: scope_context(input.cluster),
        environment: EnvironmentContext {
            id: input.environment.id.to_owned(),
            name: input.environment.name.to_owned(),
            namespace: namespace.clone(),
            config: input.environment.config.clone(),
        },
        deployment: scope_context(input.deployment),
        instance: InstanceContext {
            id: input.instance_id.to_owned(),
            namespace,
            release_name,
            config: merged,
        },
        app: AppContext {
            name: input.driver.name().to_owned(),
            version: input.app_version.to_owned(),
            chart: spec.helm.main.clone(),
        },
        components,
        parameters,
        services,
    })
}

fn scope_context(s: Scope<'_>) -> ScopeContext {
    ScopeContext {
        id: s.id.to_owned(),
        name: s.name.to_owned(),
        config: s.config.clone(),
    }
}

fn build_components(
    input: &ContextInput<'_>,
    release_name: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, ComponentContext> {
    let spec = &input.driver.spec;
    for name in input.components.keys() {
        if !spec.components.contains_key(name) {
            errors.push(FieldError::new(
                format!("components.{name}"),
                format!("driver {} has no component `{name}`", input.driver.name()),
            ));
        }
    }
    spec.components
        .iter()
        .map(|(name, component)| {
            let settings = input.components.get(name).cloned().unwrap_or_default();
            let field = format!("components.{name}");
            for var in &settings.env_vars {
                let declared = spec.env_vars.iter().find(|d| d.name == var.name);
                match declared {
                    Some(d) if d.allowed_on(name) => {}
                    Some(_) => errors.push(FieldError::new(
                        format!("{field}.env_vars.{}", var.name),
                        format!(
                            "the driver does not allow {} on component `{name}`",
                            var.name
                        ),
                    )),
                    None => errors.push(FieldError::new(
                        format!("{field}.env_vars.{}", var.name),
                        format!("the driver declares no environment variable {}", var.name),
                    )),
                }
            }
            let overrides = spec
                .container_overrides
                .iter()
                .filter(|o| &o.component == name);
            let (mut command_ok, mut args_ok) = (false, false);
            for o in overrides {
                command_ok |= o.command;
                args_ok |= o.args;
            }
            if settings.command.is_some() && !command_ok {
                errors.push(FieldError::new(
                    format!("{field}.command"),
                    format!("the driver does not allow overriding the command of `{name}`"),
                ));
            }
            if settings.args.is_some() && !args_ok {
                errors.push(FieldError::new(
                    format!("{field}.args"),
                    format!("the driver does not allow overriding the args of `{name}`"),
                ));
            }
            // The driver's identifier labels plus the release's instance label, unless
            // the driver's identifier names that label itself.
            let mut labels = component.identifier.label.clone();
            labels
                .entry(naming::INSTANCE_LABEL.to_owned())
                .or_insert_with(|| release_name.to_owned());
            let context = ComponentContext {
                labels,
                env_vars: settings.env_vars,
                command: settings.command.unwrap_or_default(),
                args: settings.args.unwrap_or_default(),
            };
            (name.clone(), context)
        })
        .collect()
}

impl GlobalContext {
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("the Context is plain data")
    }

    /// A stable digest of everything that shapes a deployment: two Instances with the same
    /// digest need no remediation. The Instance id is left out, since every Instance has
    /// its own.
    pub fn digest(&self) -> String {
        let mut value = self.to_value();
        if let Some(instance) = value.get_mut("instance").and_then(Value::as_object_mut) {
            instance.remove("id");
        }
        crate::canonical::sha256_hex(&value)
    }
}

/// Settings for a Context made up for offline rendering (`styrminctl drivers render`).
#[derive(Debug, Clone, Default)]
pub struct SampleSettings {
    pub cluster_config: Config,
    pub environment_config: Config,
    pub deployment_config: Config,
    pub environment: Option<String>,
    pub deployment: Option<String>,
    pub parameters: BTreeMap<String, Value>,
    pub components: BTreeMap<String, ComponentSettings>,
}

/// A Context with fixed ids and names (cluster `local`, environment `dev`, deployment named
/// after the driver), so offline renders are reproducible.
pub fn sample(
    driver: &ApplicationDriver,
    app_version: &str,
    settings: &SampleSettings,
) -> Result<GlobalContext, FieldErrors> {
    let environment = settings.environment.as_deref().unwrap_or("dev");
    let deployment = settings.deployment.as_deref().unwrap_or(driver.name());
    // A secret parameter not given refers to a Secret named as the server would name it:
    // offline renders never need (or see) a value.
    let mut parameters = settings.parameters.clone();
    for p in &driver.spec.parameters {
        if p.kind == crate::driver::ParameterKind::Secret && p.default.is_none() {
            parameters.entry(p.name.clone()).or_insert_with(|| {
                crate::parameters::SecretRef {
                    name: format!("{deployment}-secrets-00000000"),
                    key: p.name.clone(),
                }
                .to_value()
            });
        }
    }
    build(&ContextInput {
        cluster: Scope {
            id: "00000000-0000-4000-8000-000000000001",
            name: "local",
            config: &settings.cluster_config,
        },
        environment: Scope {
            id: "00000000-0000-4000-8000-000000000002",
            name: environment,
            config: &settings.environment_config,
        },
        deployment: Scope {
            id: "00000000-0000-4000-8000-000000000003",
            name: deployment,
            config: &settings.deployment_config,
        },
        instance_id: "00000000-0000-4000-8000-000000000004",
        driver,
        app_version,
        parameters: &parameters,
        components: &settings.components,
    })
}
