//! Names Styrmin gives to Kubernetes objects and hosts, and the rules names must follow.

use sha2::{Digest, Sha256};

/// Helm refuses release names longer than this.
pub const MAX_RELEASE_NAME: usize = 53;

/// RFC 1123 label: what Kubernetes requires of namespaces, Services and most names.
pub fn dns1123_label_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > 63 {
        return Some(format!(
            "is {} characters long; at most 63 are allowed",
            name.len()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("may contain only lowercase letters, digits and `-`".into());
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must start and end with a letter or digit".into());
    }
    None
}

/// RFC 1123 subdomain, as Kubernetes checks the names of Secrets and most objects: at most
/// 253 characters, dot-separated parts of lowercase letters, digits and `-`, each starting
/// and ending with a letter or digit.
pub fn dns1123_subdomain_problem(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some(format!(
            "is {} characters long; at most 253 are allowed",
            name.len()
        ));
    }
    // Each part as a label, except that Kubernetes does not limit a part's length.
    name.split('.').find_map(|part| {
        if part.is_empty() {
            return Some("must not have an empty part between dots".into());
        }
        let chars_ok = part
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !chars_ok {
            return Some("may contain only lowercase letters, digits, `-` and `.`".into());
        }
        (part.starts_with('-') || part.ends_with('-'))
            .then(|| "must start and end each part with a letter or digit".into())
    })
}

/// A label key (`prefix/name` or `name`) as Kubernetes validates it.
pub fn label_key_problem(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix
                .split('.')
                .all(|part| dns1123_label_problem(part).is_none());
        if !valid {
            return Some(format!("label prefix `{prefix}` is not a DNS subdomain"));
        }
    }
    label_value_problem(name).or_else(|| {
        name.is_empty()
            .then(|| "label name must not be empty".into())
    })
}

/// A label value: at most 63 characters, alphanumerics and `-_.`, alphanumeric at both ends.
pub fn label_value_problem(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some(format!("`{value}` is longer than 63 characters"));
    }
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ok_ends = value.is_empty()
        || (value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric());
    (!(ok_chars && ok_ends)).then(|| {
        format!("`{value}` may contain only letters, digits, `-`, `_` and `.`, and must start and end with a letter or digit")
    })
}

/// The namespace of an environment, unless its config names one.
pub fn default_namespace(environment: &str) -> String {
    format!("styrmin-{environment}")
}

/// `<service>-<first 8 hex digits of sha256(deployment id)>.<suffix>`: stable for the life
/// of a deployment and unique across environments.
pub fn primary_fqdn(service: &str, deployment_id: &str, fqdn_suffix: &str) -> String {
    let digest = Sha256::digest(deployment_id.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{service}-{hex}.{fqdn_suffix}")
}

/// `<service>-<environment>.<suffix>`: the name people type.
pub fn human_readable_fqdn(service: &str, environment: &str, fqdn_suffix: &str) -> String {
    format!("{service}-{environment}.{fqdn_suffix}")
}

/// The label every component's pods carry with the Helm release name (the Helm
/// convention); Styrmin adds it to each component's identifier so two deployments of one
/// driver in one namespace never select each other's pods.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// The name of a declared service's discovery `Service` for one release:
/// `<release>-<service>`, or the service's own name when it already is the release name or
/// begins with `<release>-`. Release-scoped, so two deployments of one driver do not
/// collide in one namespace.
pub fn service_name(release: &str, service: &str) -> String {
    if service == release || service.starts_with(&format!("{release}-")) {
        service.to_owned()
    } else {
        format!("{release}-{service}")
    }
}

/// In-cluster DNS name of a service, valid whatever the cluster's domain.
pub fn service_host(service: &str, namespace: &str) -> String {
    format!("{service}.{namespace}.svc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_follow_rfc_1123() {
        assert_eq!(dns1123_label_problem("my-app-2"), None);
        assert!(dns1123_label_problem("My-App").is_some());
        assert!(dns1123_label_problem("-app").is_some());
        assert!(dns1123_label_problem("app_1").is_some());
        assert!(dns1123_label_problem(&"a".repeat(64)).is_some());
    }

    #[test]
    fn label_keys_and_values_follow_kubernetes() {
        assert_eq!(label_key_problem("app.kubernetes.io/name"), None);
        assert_eq!(label_key_problem("tier"), None);
        assert!(label_key_problem("Bad_Prefix/name").is_some());
        assert!(label_key_problem("x/").is_some());
        assert_eq!(label_value_problem("my-app"), None);
        assert_eq!(label_value_problem(""), None);
        assert!(label_value_problem("has space").is_some());
    }

    #[test]
    fn fqdns_follow_the_documented_shapes() {
        let primary = primary_fqdn("my-app", "dep-1", "apps.example.com");
        let hex = &primary["my-app-".len()..primary.find('.').unwrap()];
        assert_eq!(hex.len(), 8);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
        // sha256("dep-1") starts with these bytes: the hash is of the id, not of the name.
        assert_eq!(primary, primary_fqdn("my-app", "dep-1", "apps.example.com"));
        assert_ne!(primary, primary_fqdn("my-app", "dep-2", "apps.example.com"));
        assert_eq!(
            human_readable_fqdn("my-app", "prod", "apps.example.com"),
            "my-app-prod.apps.example.com"
        );
        assert_eq!(default_namespace("prod"), "styrmin-prod");
        assert_eq!(service_host("db", "styrmin-prod"), "db.styrmin-prod.svc");
        // Discovery Services are named after the release unless the name already is.
        assert_eq!(service_name("shop", "my-app"), "shop-my-app");
        assert_eq!(service_name("my-app", "my-app"), "my-app");
        assert_eq!(service_name("my-app", "my-app-db"), "my-app-db");
        assert_eq!(service_name("my", "myapp"), "my-myapp");
        assert_eq!(
            dns1123_subdomain_problem(&format!("{}-secrets-1a2b3c4d", "a".repeat(53))),
            None
        );
        assert_eq!(dns1123_subdomain_problem("a.b-c"), None);
        assert!(dns1123_subdomain_problem("a..b").is_some());
        assert!(dns1123_subdomain_problem("A").is_some());
        assert!(dns1123_subdomain_problem("a-.b").is_some());
    }
}
