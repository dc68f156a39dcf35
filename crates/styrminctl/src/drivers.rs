//! `styrminctl drivers lint|render`: the driver author's offline tools.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
use serde_json::Value;
use styrmin_client::NoVariables;
use styrmin_client::ops::drivers::{
    DriverId, DriverVersion, GetDriver, GitDriver, ListDrivers, LoadGitDriverVersion,
    LoadLocalDriverVersion, LoadedVersion, LocalDriver,
};
use styrmin_core::context::{self, GlobalContext, SampleSettings};
use styrmin_core::driver::{self, Driver};
use styrmin_core::render::PreparedContext;
use styrmin_core::{Diagnostic, Severity, ValuesTemplate};

use crate::api::Connection;
use crate::driver_dir;
use crate::input::{
    component_settings, parse_assignments, parse_json_object, read_document, read_mapping,
};
use crate::output::{Format, print_value};
use crate::table::{Table, cell};
use crate::{ExitCode, InvalidInput};

#[derive(Subcommand)]
pub enum DriversCommand {
    /// Validate a driver directory: every error and warning, with file, line and field.
    /// Exits 1 when there are errors, 0 when there are only warnings.
    Lint {
        /// The driver directory (holding driver.styrmin.yml).
        dir: PathBuf,
        /// Treat warnings as errors.
        #[arg(long)]
        strict: bool,
    },
    /// Render the driver's values.j2.yml into Helm values, with no server.
    Render(Box<RenderArgs>),
    /// Load the driver in a directory on the server's machine (a no-op when the same
    /// content is already loaded).
    LoadLocalVersion {
        /// The driver directory, as the server sees it.
        path: PathBuf,
    },
    /// Load the tip of a git branch; the commit is pinned. The server sends
    /// STYRMIN_DRIVER_TOKEN to private repositories.
    LoadVersion {
        repo_url: String,
        branch: String,
        /// The driver's directory inside the repository, when not its root.
        #[arg(long)]
        path: Option<String>,
    },
    /// Drivers loaded on the server, with their latest version.
    List,
    /// A driver's versions.
    Show { name: String },
}

impl DriversCommand {
    /// Lint and render work offline; the rest talk to the server.
    pub fn is_offline(&self) -> bool {
        matches!(
            self,
            DriversCommand::Lint { .. } | DriversCommand::Render(_)
        )
    }
}

#[derive(Args)]
pub struct RenderArgs {
    /// The driver directory (holding driver.styrmin.yml).
    dir: PathBuf,
    /// The application version; defaults to the driver's default_version.
    #[arg(long)]
    app_version: Option<String>,
    /// A parameter value, NAME=VALUE (repeatable).
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A YAML or JSON file of parameter values (typed); -p wins over it.
    #[arg(long, value_name = "FILE")]
    values: Option<PathBuf>,
    /// Render with exactly this Context (JSON or YAML); the options that build a sample
    /// Context are then not allowed.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["app_version", "params", "values", "cluster_config", "environment_config", "deployment_config", "env", "command", "args", "environment", "deployment"])]
    context: Option<PathBuf>,
    /// Cluster config of the sample Context, as a JSON object.
    #[arg(long, value_name = "JSON")]
    cluster_config: Option<String>,
    /// Environment config of the sample Context, as a JSON object.
    #[arg(long, value_name = "JSON")]
    environment_config: Option<String>,
    /// Deployment config of the sample Context, as a JSON object.
    #[arg(long, value_name = "JSON")]
    deployment_config: Option<String>,
    /// Environment name of the sample Context.
    #[arg(long, default_value = "dev")]
    environment: String,
    /// Deployment name of the sample Context (default: the driver's name).
    #[arg(long)]
    deployment: Option<String>,
    /// A component environment variable, COMPONENT.NAME=VALUE (repeatable).
    #[arg(long, value_name = "COMPONENT.NAME=VALUE")]
    env: Vec<String>,
    /// A command override, COMPONENT=JSON_LIST (repeatable).
    #[arg(long, value_name = "COMPONENT=JSON")]
    command: Vec<String>,
    /// An args override, COMPONENT=JSON_LIST (repeatable).
    #[arg(long, value_name = "COMPONENT=JSON")]
    args: Vec<String>,
    /// Print the Context used instead of the values.
    #[arg(long)]
    show_context: bool,
}

pub fn run(command: DriversCommand, format: Format) -> Result<ExitCode> {
    match command {
        DriversCommand::Lint { dir, strict } => lint(&dir, strict, format),
        DriversCommand::Render(args) => render(*args, format),
        _ => unreachable!("server commands run through `remote`"),
    }
}

fn version_table(list: &[&DriverVersion]) {
    let mut t = Table::new(&["ID", "DRIVER", "VERSION", "DIGEST", "SOURCE", "LOADED"]);
    for v in list {
        let source = match v.source.kind.as_str() {
            "git" => format!(
                "{}@{} ({})",
                cell(&v.source.url),
                cell(&v.source.branch),
                cell(&v.source.commit).chars().take(12).collect::<String>()
            ),
            _ => cell(&v.source.path),
        };
        t.row(vec![
            v.id.clone(),
            v.driver_name.clone(),
            v.version.clone(),
            v.digest.chars().take(12).collect(),
            source,
            v.loaded_at.clone(),
        ]);
    }
    t.print();
}

fn loaded_output(loaded: &LoadedVersion, format: Format) -> Result<ExitCode> {
    match format {
        Format::Table => {
            version_table(&[&loaded.version]);
            if !loaded.created {
                println!("\nAlready loaded: the same content is this version; nothing changed.");
            }
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
        }
        _ => print_value(loaded, format)?,
    }
    Ok(ExitCode::Ok)
}

/// The commands that talk to the server.
pub async fn remote(
    command: DriversCommand,
    conn: &Connection,
    format: Format,
) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        DriversCommand::LoadLocalVersion { path } => {
            // The server reads the path; make a relative one mean what the user typed.
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            let vars = LocalDriver {
                path: path.display().to_string(),
            };
            loaded_output(&client.run::<LoadLocalDriverVersion>(&vars).await?, format)
        }
        DriversCommand::LoadVersion {
            repo_url,
            branch,
            path,
        } => {
            let vars = GitDriver {
                repo_url,
                branch,
                path,
            };
            loaded_output(&client.run::<LoadGitDriverVersion>(&vars).await?, format)
        }
        DriversCommand::List => {
            let drivers = client.run::<ListDrivers>(&NoVariables {}).await?;
            match format {
                Format::Table => {
                    let latest: Vec<&DriverVersion> = drivers
                        .iter()
                        .filter_map(|d| d.latest_version.as_ref())
                        .collect();
                    version_table(&latest);
                }
                _ => print_value(&drivers, format)?,
            }
            Ok(ExitCode::Ok)
        }
        DriversCommand::Show { name } => {
            let driver = client.run::<GetDriver>(&DriverId { id: name }).await?;
            match format {
                Format::Table => version_table(&driver.versions.iter().collect::<Vec<_>>()),
                _ => print_value(&driver, format)?,
            }
            Ok(ExitCode::Ok)
        }
        offline => run(offline, format),
    }
}

fn lint(dir: &Path, strict: bool, format: Format) -> Result<ExitCode> {
    let files = driver_dir::read(dir)?;
    let loaded = driver::load(&files);
    let errors = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = loaded.diagnostics.len() - errors;
    match format {
        Format::Table => {
            let mut out = std::io::stdout().lock();
            for d in &loaded.diagnostics {
                writeln!(out, "{}", located(dir, d))?;
            }
            let name = loaded
                .driver
                .as_ref()
                .map(|d| format!("driver {} version {}", d.spec.name(), d.spec.spec.version))
                .unwrap_or_else(|| dir.display().to_string());
            let verdict = if errors == 0 { "ok" } else { "invalid" };
            writeln!(
                out,
                "{name}: {verdict}, {errors} error(s), {warnings} warning(s)"
            )?;
        }
        _ => print_value(
            &serde_json::json!({
                "valid": errors == 0,
                "errors": errors,
                "warnings": warnings,
                "diagnostics": loaded.diagnostics,
            }),
            format,
        )?,
    }
    Ok(if errors > 0 || (strict && warnings > 0) {
        ExitCode::Invalid
    } else {
        ExitCode::Ok
    })
}

/// A diagnostic with the file path as the user can open it.
fn located(dir: &Path, d: &Diagnostic) -> String {
    let mut shown = d.clone();
    shown.file = dir.join(&d.file).display().to_string();
    shown.to_string()
}

fn load_valid(dir: &Path) -> Result<Driver> {
    let files = driver_dir::read(dir)?;
    let loaded = driver::load(&files);
    if let Some(driver) = loaded.driver {
        return Ok(driver);
    }
    let lines: Vec<String> = loaded.errors().map(|d| located(dir, d)).collect();
    Err(InvalidInput(format!(
        "the driver is invalid ({} error(s)); `styrminctl drivers lint {}` shows them all:\n{}",
        lines.len(),
        dir.display(),
        lines.join("\n")
    ))
    .into())
}

fn render(args: RenderArgs, format: Format) -> Result<ExitCode> {
    let driver = load_valid(&args.dir)?;
    let context = match &args.context {
        Some(path) => read_context(path)?,
        None => sample_context(&driver, &args)?.to_value(),
    };
    if args.show_context {
        print_value(
            &context,
            if format == Format::Table {
                Format::Yaml
            } else {
                format
            },
        )?;
        return Ok(ExitCode::Ok);
    }
    let template = driver.values_template.as_deref().unwrap_or_default();
    // A Context file renders with its maps in the file's order, as Python's json.load keeps
    // them: templates that iterate a map see that order.
    let prepared = match &args.context {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(anyhow::Error::from)
                .and_then(|text| PreparedContext::from_text(&text).map_err(|e| anyhow!(e)))
                .map_err(|e| InvalidInput(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let rendered = ValuesTemplate::compile(template)
        .and_then(|t| match &prepared {
            Some(prepared) => t.render_prepared_values(prepared),
            None => t.render(&context),
        })
        .map_err(|e| InvalidInput(format!("{}: {e}", args.dir.display())))?;
    match format {
        Format::Json => print_value(&Value::Object(rendered.values), Format::Json)?,
        _ => {
            let mut text = rendered.text;
            if !text.ends_with('\n') && !text.is_empty() {
                text.push('\n');
            }
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
    }
    Ok(ExitCode::Ok)
}

/// A complete Context from a file, checked against the Context's shape so a typo in a key
/// is caught here rather than rendering as empty.
fn read_context(path: &Path) -> Result<Value> {
    let value = read_document(path)?;
    serde_json::from_value::<GlobalContext>(value.clone())
        .map_err(|e| InvalidInput(format!("{} is not a complete Context: {e}", path.display())))?;
    Ok(value)
}

fn sample_context(driver: &Driver, args: &RenderArgs) -> Result<GlobalContext> {
    let spec = &driver.spec.spec;
    let app_version = args
        .app_version
        .clone()
        .or_else(|| spec.default_version.clone())
        .ok_or_else(|| anyhow!("--app-version is required: the driver has no default_version"))?;
    let mut parameters = match &args.values {
        Some(path) => read_mapping(path)?.into_iter().collect(),
        None => BTreeMap::new(),
    };
    parameters.extend(parse_assignments(&args.params, "-p")?);
    let config = |text: &Option<String>, flag: &str| match text {
        Some(t) => parse_json_object(t, flag),
        None => Ok(Default::default()),
    };
    let settings = SampleSettings {
        cluster_config: config(&args.cluster_config, "--cluster-config")?,
        environment_config: config(&args.environment_config, "--environment-config")?,
        deployment_config: config(&args.deployment_config, "--deployment-config")?,
        environment: Some(args.environment.clone()),
        deployment: args.deployment.clone(),
        parameters,
        components: component_settings(&args.env, &args.command, &args.args)?,
    };
    context::sample(&driver.spec, &app_version, &settings)
        .map_err(|e| InvalidInput(e.to_string()).into())
}
