//! Charts shipped inside a driver (`helm.main.location: ./chart`), packaged the way
//! `helm package` does (`NAME/…` inside a gzipped tar) so the server can serve them as a
//! Helm chart repository. Archives are deterministic: the same files give the same bytes
//! and digest, so reloading a driver never makes a "new" chart.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::Bundle;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChartError {
    #[error("the driver has no {0}/Chart.yaml")]
    NoChartYaml(String),
    #[error("{path}/Chart.yaml: {message}")]
    BadChartYaml { path: String, message: String },
    #[error("cannot write the chart archive: {0}")]
    Archive(String),
}

/// A chart archive and what a repository index says of it.
#[derive(Debug, Clone)]
pub struct PackagedChart {
    pub name: String,
    pub version: String,
    /// `Chart.yaml` as JSON: the fields of the index entry.
    pub metadata: Value,
    pub archive: Vec<u8>,
    /// sha256 of the archive, as Helm's index.yaml states it.
    pub digest: String,
}

impl PackagedChart {
    pub fn file_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }
}

/// Packages the chart at `dir` (relative, no `./`) of the bundle.
pub fn package(bundle: &Bundle, dir: &str) -> Result<PackagedChart, ChartError> {
    let dir = dir.trim_start_matches("./").trim_end_matches('/');
    let chart_yaml = bundle
        .files
        .get(&format!("{dir}/Chart.yaml"))
        .ok_or_else(|| ChartError::NoChartYaml(dir.to_owned()))?;
    let bad = |message: String| ChartError::BadChartYaml {
        path: dir.to_owned(),
        message,
    };
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_slice(chart_yaml).map_err(|e| bad(e.to_string()))?;
    let metadata = styrmin_core::render::yaml_to_json(yaml);
    let field = |name: &str| -> Result<String, ChartError> {
        match metadata.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(bad(format!("`{name}` is required"))),
        }
    };
    let name = field("name")?;
    let version = field("version")?;

    let mut tar = tar::Builder::new(Vec::new());
    let prefix = format!("{dir}/");
    for (path, content) in bundle.files.range(prefix.clone()..) {
        let Some(rest) = path.strip_prefix(&prefix) else {
            break;
        };
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        tar.append_data(&mut header, format!("{name}/{rest}"), content.as_slice())
            .map_err(|e| ChartError::Archive(e.to_string()))?;
    }
    let tarball = tar
        .into_inner()
        .map_err(|e| ChartError::Archive(e.to_string()))?;
    // The gzip header carries no name or time, so the bytes depend on the files alone.
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&tarball)
        .map_err(|e| ChartError::Archive(e.to_string()))?;
    let archive = gz
        .finish()
        .map_err(|e| ChartError::Archive(e.to_string()))?;
    let mut digest = String::with_capacity(64);
    for b in Sha256::digest(&archive) {
        digest.push_str(&format!("{b:02x}"));
    }
    Ok(PackagedChart {
        name,
        version,
        metadata,
        archive,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Read as _;

    use super::*;

    fn bundle(chart_yaml: &str, template: &str) -> Bundle {
        let mut files = BTreeMap::new();
        files.insert("driver.styrmin.yml".to_owned(), b"spec".to_vec());
        files.insert(
            "chart/Chart.yaml".to_owned(),
            chart_yaml.as_bytes().to_vec(),
        );
        files.insert(
            "chart/templates/a.yaml".to_owned(),
            template.as_bytes().to_vec(),
        );
        files.insert("chartx/other".to_owned(), b"not the chart".to_vec());
        Bundle { files }
    }

    #[test]
    fn a_chart_is_packaged_under_its_name_with_a_stable_digest() {
        let b = bundle("apiVersion: v2\nname: web\nversion: 1.2.0\n", "kind: X");
        let chart = package(&b, "./chart/").unwrap();
        assert_eq!(
            (chart.name.as_str(), chart.version.as_str()),
            ("web", "1.2.0")
        );
        assert_eq!(chart.file_name(), "web-1.2.0.tgz");
        assert_eq!(
            chart.digest,
            package(&b, "chart").unwrap().digest,
            "same files, same bytes"
        );

        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(chart.archive.as_slice())
            .read_to_end(&mut tar)
            .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let paths: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(paths, ["web/Chart.yaml", "web/templates/a.yaml"]);

        let changed = bundle("apiVersion: v2\nname: web\nversion: 1.2.0\n", "kind: Y");
        assert_ne!(package(&changed, "chart").unwrap().digest, chart.digest);
    }

    #[test]
    fn a_chart_without_name_or_version_is_refused() {
        let b = bundle("apiVersion: v2\nname: web\n", "");
        let err = package(&b, "chart").unwrap_err().to_string();
        assert_eq!(err, "chart/Chart.yaml: `version` is required");
        assert!(matches!(
            package(&b, "nowhere"),
            Err(ChartError::NoChartYaml(_))
        ));
    }
}
