//! The Context (SPEC §3): merge rules, naming, ingress and fqdn keys, typed parameters,
//! component settings, and the digest that decides whether a change needs a remediation.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use styrmin_core::context::{self, ComponentSettings, Config, ContextInput, EnvVar, Scope};
use styrmin_core::driver::{self, ApplicationDriver, DriverFiles};

const SPEC: &str = r#"
apiVersion: styrmin.io/v1
kind: ApplicationDriver
metadata: { name: shop }
spec:
  version: "3"
  supported_versions: ">=1.0,<2.0"
  default_version: "1.2.0"
  helm: { main: { location: "oci://registry.example.com/charts/shop", version: "0.4.0" } }
  components:
    web: { identifier: { label: { app: shop, tier: web } } }
    db: { identifier: { label: { app: shop, tier: db } } }
  services:
    - { name: shop, kind: http, scope: external, port: 8080, component: web }
    - { name: shop-db, kind: tcp, scope: internal, port: 5432, component: db }
  parameters:
    - { name: replicas, kind: integer, default: 1 }
    - { name: debug, kind: boolean, default: false }
    - { name: owner, kind: string }
  env_vars:
    - { name: SHOP_MODE, level: component, components: [web] }
  container_overrides:
    - { component: web, container: web, command: true, args: false }
"#;

fn driver() -> ApplicationDriver {
    let loaded = driver::load(&DriverFiles {
        spec: SPEC.into(),
        ..Default::default()
    });
    assert!(
        loaded.errors().next().is_none(),
        "{:#?}",
        loaded.diagnostics
    );
    loaded.driver.unwrap().spec
}

fn config(v: Value) -> Config {
    v.as_object().unwrap().clone()
}

struct Fixture {
    driver: ApplicationDriver,
    cluster: Config,
    environment: Config,
    deployment: Config,
    parameters: BTreeMap<String, Value>,
    components: BTreeMap<String, ComponentSettings>,
    deployment_name: String,
    app_version: String,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            driver: driver(),
            cluster: config(
                json!({"fqdn_suffix": "apps.example.com", "standard_storage": {"storage_class": "fast"}, "team": {"name": "a", "tags": ["x"]}}),
            ),
            environment: config(json!({"ingress_class": "nginx", "team": {"tags": ["y"]}})),
            deployment: config(json!({"team": {"owner": "ops"}})),
            parameters: BTreeMap::from([("owner".to_owned(), json!("ops@example.com"))]),
            components: BTreeMap::new(),
            deployment_name: "shop".into(),
            app_version: "1.2.0".into(),
        }
    }

    fn build(&self) -> Result<context::GlobalContext, styrmin_core::FieldErrors> {
        self.build_with_instance("instance-1")
    }

    fn build_with_instance(
        &self,
        instance: &str,
    ) -> Result<context::GlobalContext, styrmin_core::FieldErrors> {
        context::build(&ContextInput {
            cluster: Scope {
                id: "cluster-1",
                name: "local",
                config: &self.cluster,
            },
            environment: Scope {
                id: "env-1",
                name: "prod",
                config: &self.environment,
            },
            deployment: Scope {
                id: "deployment-1",
                name: &self.deployment_name,
                config: &self.deployment,
            },
            instance_id: instance,
            driver: &self.driver,
            app_version: &self.app_version,
            parameters: &self.parameters,
            components: &self.components,
        })
    }
}

#[test]
fn instance_config_deep_merges_cluster_environment_and_deployment() {
    let ctx = Fixture::new().build().unwrap();
    assert_eq!(
        Value::Object(ctx.instance.config),
        json!({
            "fqdn_suffix": "apps.example.com",
            "standard_storage": {"storage_class": "fast"},
            "ingress_class": "nginx",
            // maps merge key by key; the list is replaced, not appended
            "team": {"name": "a", "tags": ["y"], "owner": "ops"}
        })
    );
    // Each scope keeps its own config as given.
    assert_eq!(
        Value::Object(ctx.environment.config),
        json!({"ingress_class": "nginx", "team": {"tags": ["y"]}})
    );
}

#[test]
fn names_and_fqdns_follow_the_documented_shapes() {
    let ctx = Fixture::new().build().unwrap();
    assert_eq!(ctx.environment.namespace, "styrmin-prod");
    assert_eq!(ctx.instance.namespace, "styrmin-prod");
    assert_eq!(ctx.instance.release_name, "shop");
    let shop = &ctx.services["shop"];
    assert_eq!(shop.host, "shop.styrmin-prod.svc");
    assert_eq!(shop.human_readable_fqdn, "shop-prod.apps.example.com");
    // sha256("deployment-1") begins with 6d187e3e… : the hash is of the deployment id.
    assert_eq!(shop.primary_fqdn, "shop-6d187e3e.apps.example.com");
    assert_eq!(ctx.app.name, "shop");
    assert_eq!(
        ctx.app.chart.location,
        "oci://registry.example.com/charts/shop"
    );
}

/// Two deployments of one driver in one environment get distinct Service names, hosts and
/// URLs, and component labels that hold their own release; a name that would not fit a
/// DNS label is refused naming the service.
#[test]
fn services_and_component_labels_are_scoped_by_the_release() {
    let shop = Fixture::new().build().unwrap();
    let mut f = Fixture::new();
    f.deployment_name = "shop2".into();
    let other = f.build().unwrap();
    // `shop` is the release name itself: its services keep their declared names.
    assert_eq!(shop.services["shop"].name, "shop");
    assert_eq!(shop.services["shop-db"].name, "shop-db");
    assert_eq!(other.services["shop"].name, "shop2-shop");
    assert_eq!(
        other.services["shop-db"].host,
        "shop2-shop-db.styrmin-prod.svc"
    );
    assert_eq!(
        other.services["shop"].human_readable_fqdn,
        "shop2-shop-prod.apps.example.com"
    );
    assert_eq!(
        other.components["web"].labels["app.kubernetes.io/instance"],
        "shop2"
    );
    assert_eq!(
        shop.components["web"].labels["app.kubernetes.io/instance"],
        "shop"
    );

    let mut long = Fixture::new();
    long.deployment_name = format!("x{}", "y".repeat(52));
    let errors = long.build().unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    // `<release>-shop-db-prod` is 66 characters: too long for a host name.
    assert_eq!(fields, ["services.shop-db"], "{errors}");
}

#[test]
fn fqdns_are_empty_without_an_fqdn_suffix() {
    let mut f = Fixture::new();
    f.cluster.remove("fqdn_suffix");
    let ctx = f.build().unwrap();
    assert_eq!(ctx.services["shop"].primary_fqdn, "");
    assert_eq!(ctx.services["shop"].human_readable_fqdn, "");
}

#[test]
fn a_dedicated_ingress_removes_the_shared_ingress_class() {
    let mut f = Fixture::new();
    f.environment.insert(
        "dedicated_ingress".into(),
        json!({"service": {"annotations": {}}}),
    );
    let ctx = f.build().unwrap();
    assert!(!ctx.instance.config.contains_key("ingress_class"));
}

#[test]
fn an_environment_may_name_its_namespace() {
    let mut f = Fixture::new();
    f.environment.insert("namespace".into(), json!("shop-live"));
    let ctx = f.build().unwrap();
    assert_eq!(ctx.environment.namespace, "shop-live");
    assert_eq!(ctx.services["shop-db"].host, "shop-db.shop-live.svc");
}

#[test]
fn parameters_are_typed_with_defaults_applied() {
    let mut f = Fixture::new();
    f.parameters.insert("replicas".into(), json!("3"));
    let ctx = f.build().unwrap();
    assert_eq!(
        json!(ctx.parameters),
        json!({"replicas": 3, "debug": false, "owner": "ops@example.com"})
    );
}

#[test]
fn component_settings_fill_the_components_key_and_unset_lists_are_empty() {
    let mut f = Fixture::new();
    f.components.insert(
        "web".into(),
        ComponentSettings {
            env_vars: vec![EnvVar {
                name: "SHOP_MODE".into(),
                value: "fast".into(),
            }],
            command: Some(vec!["serve".into()]),
            args: None,
        },
    );
    let ctx = f.build().unwrap();
    assert_eq!(
        serde_json::to_value(&ctx.components["web"]).unwrap(),
        json!({"labels": {"app": "shop", "app.kubernetes.io/instance": "shop", "tier": "web"}, "env_vars": [{"name": "SHOP_MODE", "value": "fast"}], "command": ["serve"], "args": []})
    );
    assert_eq!(ctx.components["db"].command, Vec::<String>::new());
}

#[test]
fn every_wrong_input_is_reported_with_its_field() {
    let mut f = Fixture::new();
    f.app_version = "2.0.0".into();
    f.deployment_name = "a-deployment-name-that-is-far-too-long-for-a-helm-release".into();
    f.parameters = BTreeMap::from([("replicas".to_owned(), json!(true))]);
    f.cluster
        .insert("fqdn_suffix".into(), json!("not a domain"));
    f.components.insert(
        "web".into(),
        ComponentSettings {
            env_vars: vec![EnvVar {
                name: "UNDECLARED".into(),
                value: "1".into(),
            }],
            command: None,
            args: Some(vec!["--x".into()]),
        },
    );
    f.components.insert(
        "db".into(),
        ComponentSettings {
            env_vars: vec![EnvVar {
                name: "SHOP_MODE".into(),
                value: "1".into(),
            }],
            ..Default::default()
        },
    );
    f.components
        .insert("cache".into(), ComponentSettings::default());
    let errors = f.build().unwrap_err();
    let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "cluster.config.fqdn_suffix",
            "app_version",
            "deployment.name",
            "parameters.replicas",
            "parameters.owner",
            "components.cache",
            "components.db.env_vars.SHOP_MODE",
            "components.web.env_vars.UNDECLARED",
            "components.web.args",
        ],
        "{errors}"
    );
    assert!(
        errors
            .to_string()
            .contains("2.0.0 is outside the versions driver shop 3 supports (>=1.0,<2.0)")
    );
    assert!(errors.to_string().contains("at most 53"));
}

#[test]
fn known_config_keys_are_type_checked() {
    let errors = context::check_config(
        "environment",
        &config(
            json!({"ip_whitelist": ["10.0.0.0/8", "300.1.1.1/32"], "ingress_class": 5, "dedicated_ingress": true, "backup_deadline_seconds": 0, "anything": {"else": 1}}),
        ),
    );
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "environment.config.backup_deadline_seconds",
            "environment.config.dedicated_ingress",
            "environment.config.ingress_class",
            "environment.config.ip_whitelist"
        ]
    );
}

#[test]
fn the_digest_ignores_the_instance_id_and_sees_every_other_change() {
    let f = Fixture::new();
    let a = f.build_with_instance("instance-1").unwrap();
    let b = f.build_with_instance("instance-2").unwrap();
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.digest().len(), 64);

    let mut changed = Fixture::new();
    changed.parameters.insert("debug".into(), json!(true));
    assert_ne!(changed.build().unwrap().digest(), a.digest());

    let mut nested = Fixture::new();
    nested.deployment = config(json!({"team": {"owner": "someone-else"}}));
    assert_ne!(nested.build().unwrap().digest(), a.digest());
}

#[test]
fn the_context_round_trips_through_json_in_the_documented_shape() {
    let ctx = Fixture::new().build().unwrap();
    let value = ctx.to_value();
    let keys: Vec<&String> = value.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        vec![
            "app",
            "cluster",
            "components",
            "deployment",
            "environment",
            "instance",
            "parameters",
            "services"
        ]
    );
    assert_eq!(
        value["services"]["shop"],
        json!({"name": "shop", "kind": "http", "scope": "external", "port": 8080, "component": "web",
               "host": "shop.styrmin-prod.svc", "primary_fqdn": "shop-6d187e3e.apps.example.com",
               "human_readable_fqdn": "shop-prod.apps.example.com"})
    );
    let back: context::GlobalContext = serde_json::from_value(value).unwrap();
    assert_eq!(back, ctx);
}

/// A secret parameter holds a reference in the Context, never a value: a plain value is
/// refused naming the parameter; an offline (sample) render refers to a placeholder Secret
/// named as the server names them.
#[test]
fn secret_parameters_are_references_in_the_context() {
    let spec = SPEC.replace(
        "    - { name: owner, kind: string }\n",
        "    - { name: owner, kind: string }\n    - { name: token, kind: secret }\n",
    );
    let loaded = driver::load(&DriverFiles {
        spec,
        ..Default::default()
    });
    let with_secret = loaded.driver.expect("the driver loads").spec;
    let mut f = Fixture::new();
    f.driver = with_secret.clone();
    f.parameters.insert("token".into(), json!("plain-value"));
    let errors = f.build().unwrap_err();
    assert_eq!(errors.0[0].field, "parameters.token", "{errors}");
    assert!(!errors.to_string().contains("plain-value"), "{errors}");
    let reference = json!({"secretRef": {"name": "shop-secrets-1a2b3c4d", "key": "token"}});
    f.parameters.insert("token".into(), reference.clone());
    assert_eq!(f.build().unwrap().parameters["token"], reference);

    let settings = context::SampleSettings {
        parameters: BTreeMap::from([("owner".to_owned(), json!("ops@example.com"))]),
        ..Default::default()
    };
    let sample = context::sample(&with_secret, "1.2.0", &settings).unwrap();
    assert_eq!(
        sample.parameters["token"],
        json!({"secretRef": {"name": "shop-secrets-00000000", "key": "token"}})
    );
}
