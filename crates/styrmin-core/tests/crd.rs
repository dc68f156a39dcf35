//! The StyrminDeployment CRD in deploy/crds/ (and its copy in the chart's crds/) is the
//! one the Rust type generates. Regenerate both with
//! `STYRMIN_UPDATE_CRDS=1 cargo test -p styrmin-core --test crd`.

use std::path::Path;

#[test]
fn deploy_crds_matches_the_rust_type() {
    let generated = styrmin_core::crd::crd_yaml();
    for file in [
        "deploy/crds/styrmindeployments.styrmin.io.yaml",
        "deploy/helm/styrmin/crds/styrmindeployments.styrmin.io.yaml",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(file);
        if std::env::var_os("STYRMIN_UPDATE_CRDS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{file} is out of date: run STYRMIN_UPDATE_CRDS=1 cargo test -p styrmin-core --test crd"
        );
    }
}

#[test]
fn the_crd_is_namespaced_with_a_status_subresource_and_an_open_context() {
    let crd: serde_json::Value = serde_yaml_ng::from_str(&styrmin_core::crd::crd_yaml()).unwrap();
    assert_eq!(crd["spec"]["group"], "styrmin.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1");
    assert!(version["subresources"]["status"].is_object());
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(
        spec["properties"]["context"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
    assert_eq!(
        spec["properties"]["phase"]["enum"],
        serde_json::json!(["running", "stopped", "deleting"])
    );
    // Kubernetes 1.20 refuses a CRD with `null` among an enum's values, and reads an
    // empty-string default as null.
    let yaml = styrmin_core::crd::crd_yaml();
    assert!(
        !yaml.contains("- null") && !yaml.contains("default:"),
        "{yaml}"
    );
}
