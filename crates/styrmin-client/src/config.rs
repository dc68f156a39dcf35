//! The user's client configuration: named contexts (a server and its token) and the one in
//! use, as kubectl and the argocd CLI keep them. `styrminctl login` and `styrmin up` write
//! it; `styrminctl` reads it when no flag or environment variable names the server.
//!
//! The file is `$STYRMIN_CONFIG`, else `$XDG_CONFIG_HOME/styrmin/config.yaml`, else
//! `~/.config/styrmin/config.yaml`. It holds tokens, so it is written with mode 0600 (and a
//! new directory with 0700), replaced whole through a temporary file.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

/// A configuration file larger than this is refused (a real one is a few hundred bytes).
const MAX_SIZE: u64 = 1024 * 1024;
/// At most this many contexts.
const MAX_CONTEXTS: usize = 1000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

/// A server and the token to use with it, under a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub name: String,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Where the configuration file is.
pub fn path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("STYRMIN_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(path.into());
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(dir).join("styrmin/config.yaml"));
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".config/styrmin/config.yaml")),
        None => bail!("neither STYRMIN_CONFIG nor HOME is set: no place for the configuration"),
    }
}

/// Checks a context's name: 1 to 63 letters, digits, `.`, `_` or `-`.
pub fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        bail!("context name {name:?}: use 1 to 63 letters, digits, `.`, `_` or `-`");
    }
    Ok(())
}

/// Checks a server URL: `http://` or `https://`, a host, at most 2,048 characters.
pub fn check_server(server: &str) -> Result<()> {
    let rest = server
        .strip_prefix("http://")
        .or_else(|| server.strip_prefix("https://"));
    match rest {
        Some(host)
            if !host.is_empty()
                && server.len() <= 2048
                && !server.contains(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => bail!("server {server:?}: expected http://HOST[:PORT] or https://HOST[:PORT]"),
    }
}

/// A context name from a server URL: its host and port (`127.0.0.1-8080`).
pub fn name_for(server: &str) -> String {
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let name: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    if name.is_empty() {
        "default".into()
    } else {
        name
    }
}

impl Config {
    /// The file at `path`; an empty configuration when there is none.
    pub fn load(path: &Path) -> Result<Config> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > MAX_SIZE {
            bail!(
                "{} is {size} bytes, more than a configuration can be ({MAX_SIZE})",
                path.display()
            );
        }
        let text = std::io::read_to_string(file)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let config: Config = serde_yaml_ng::from_str(&text)
            .with_context(|| format!("{} is not a valid configuration", path.display()))?;
        if config.contexts.len() > MAX_CONTEXTS {
            bail!("{} has more than {MAX_CONTEXTS} contexts", path.display());
        }
        Ok(config)
    }

    /// Writes the configuration to `path` (mode 0600), replacing the file whole.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let text = format!(
            "# Styrmin client contexts (styrminctl login, styrmin up). Holds tokens: keep it private.\n{}",
            serde_yaml_ng::to_string(self).context("cannot write the configuration as YAML")?
        );
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config".into());
        let staging = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staging)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.sync_all()
            });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&staging);
            return Err(e).with_context(|| format!("cannot write {}", staging.display()));
        }
        std::fs::rename(&staging, path)
            .with_context(|| format!("cannot replace {}", path.display()))
    }

    pub fn get(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The context in use, if one is set and still exists.
    pub fn current(&self) -> Option<&Context> {
        self.get(self.current_context.as_deref()?)
    }

    /// Adds or replaces the context of the same name.
    pub fn upsert(&mut self, context: Context) -> Result<()> {
        check_name(&context.name)?;
        check_server(&context.server)?;
        if let Some(existing) = self.contexts.iter_mut().find(|c| c.name == context.name) {
            *existing = context;
        } else if self.contexts.len() >= MAX_CONTEXTS {
            bail!("already {MAX_CONTEXTS} contexts: delete some first");
        } else {
            self.contexts.push(context);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_saved_configuration_reads_back_and_only_its_owner_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/config.yaml");
        let mut config = Config::default();
        config
            .upsert(Context {
                name: "local".into(),
                server: "http://127.0.0.1:8080".into(),
                token: Some("stm_secret".into()),
            })
            .unwrap();
        config.current_context = Some("local".into());
        config.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Config::load(&path).unwrap(), config);
        assert_eq!(
            Config::load(&dir.path().join("none")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn bad_names_servers_and_files_are_refused_with_the_reason() {
        assert!(check_name("prod-eu.1").is_ok());
        assert!(check_name("").is_err() && check_name("a b").is_err());
        assert!(
            check_server("ftp://x")
                .unwrap_err()
                .to_string()
                .contains("expected http://")
        );
        assert_eq!(
            name_for("https://styrmin.example.com:8443/x"),
            "styrmin.example.com-8443"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "contexts: [{name: a, server: http://x, colour: red}]",
        )
        .unwrap();
        let error = format!("{:#}", Config::load(&path).unwrap_err());
        assert!(
            error.contains("not a valid configuration") && error.contains("colour"),
            "{error}"
        );
    }
}
