//! `styrminctl clusters …` and `styrminctl environments …`.

use anyhow::Result;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::api::{Connection, call};
use crate::input::parse_json_object;
use crate::output::{Format, print_value, show, show_value_list};
use crate::table::{Table, print_value_fields, text};
use crate::{ExitCode, InvalidInput};

const CLUSTER: &str = "id name config agentOnline agentLastSeen agentVersion createdAt updatedAt";
const ENVIRONMENT: &str =
    "id name clusterId namespace config backupStorageLocation { id name } createdAt updatedAt";

#[derive(Subcommand)]
pub enum ClustersCommand {
    /// Register a cluster; prints the token its agent authenticates with (shown once).
    Create {
        name: String,
        /// The cluster's config, a JSON object inherited by its environments.
        #[arg(short = 'c', long = "config", value_name = "JSON")]
        config: Option<String>,
    },
    List,
    Show {
        id: String,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(short = 'c', long = "config", value_name = "JSON")]
        config: Option<String>,
    },
    /// Delete a cluster that has no environments left.
    Delete {
        id: String,
    },
    /// Issue a new agent token; the old one stops working at once.
    RotateToken {
        id: String,
    },
}

#[derive(Subcommand)]
pub enum EnvironmentsCommand {
    /// Create an environment on a cluster (namespace `styrmin-NAME` unless the config
    /// sets `namespace`).
    Create {
        name: String,
        cluster_id: String,
        #[arg(short = 'c', long = "config", value_name = "JSON")]
        config: Option<String>,
    },
    List {
        #[arg(long)]
        cluster: Option<String>,
    },
    Show {
        id: String,
    },
    Update {
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(short = 'c', long = "config", value_name = "JSON")]
        config: Option<String>,
    },
    /// Delete an environment that has no deployments left.
    Delete {
        id: String,
    },
}

pub fn config_arg(text: &Option<String>) -> Result<Value> {
    match text {
        Some(t) => Ok(Value::Object(
            parse_json_object(t, "-c").map_err(|e| InvalidInput(e.to_string()))?,
        )),
        None => Ok(Value::Null),
    }
}

fn cluster_table(list: &[Value]) {
    let mut t = Table::new(&["ID", "NAME", "AGENT", "LAST SEEN", "CONFIG"]);
    for c in list {
        let agent = if c["agentOnline"] == Value::Bool(true) {
            "online"
        } else {
            "offline"
        };
        t.row(vec![
            text(c, "id"),
            text(c, "name"),
            agent.into(),
            text(c, "agentLastSeen"),
            text(c, "config"),
        ]);
    }
    t.print();
}

fn environment_table(list: &[Value]) {
    let mut t = Table::new(&["ID", "NAME", "CLUSTER", "NAMESPACE", "BACKUP LOCATION"]);
    for e in list {
        t.row(vec![
            text(e, "id"),
            text(e, "name"),
            text(e, "clusterId"),
            text(e, "namespace"),
            text(e, "backupStorageLocation.name"),
        ]);
    }
    t.print();
}

fn with_token(payload: &Value, format: Format) -> Result<ExitCode> {
    match format {
        Format::Table => {
            cluster_table(std::slice::from_ref(&payload["cluster"]));
            println!();
            print_value_fields(payload, &[("Agent token (shown once):", "agentToken")]);
        }
        _ => print_value(payload, format)?,
    }
    Ok(ExitCode::Ok)
}

pub async fn clusters(
    command: ClustersCommand,
    conn: &Connection,
    format: Format,
) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        ClustersCommand::Create { name, config } => {
            let q = format!(
                "mutation($name: String!, $config: JSON) {{ createCluster(name: $name, config: $config) {{ agentToken cluster {{ {CLUSTER} }} }} }}"
            );
            let v = call(
                &client,
                &q,
                json!({"name": name, "config": config_arg(&config)?}),
                "createCluster",
            )
            .await?;
            with_token(&v, format)
        }
        ClustersCommand::List => {
            let q = format!("{{ clusters {{ {CLUSTER} }} }}");
            show_value_list(
                &call(&client, &q, json!({}), "clusters").await?,
                format,
                cluster_table,
            )
        }
        ClustersCommand::Show { id } => {
            let q = format!(
                "query($id: ID!) {{ cluster(id: $id) {{ {CLUSTER} environments {{ id name namespace }} }} }}"
            );
            show(
                &call(&client, &q, json!({"id": id}), "cluster").await?,
                format,
                cluster_table,
            )
        }
        ClustersCommand::Update { id, name, config } => {
            let q = format!(
                "mutation($id: ID!, $name: String, $config: JSON) {{ updateCluster(id: $id, name: $name, config: $config) {{ {CLUSTER} }} }}"
            );
            let vars = json!({"id": id, "name": name, "config": config_arg(&config)?});
            show(
                &call(&client, &q, vars, "updateCluster").await?,
                format,
                cluster_table,
            )
        }
        ClustersCommand::Delete { id } => {
            let q = format!("mutation($id: ID!) {{ deleteCluster(id: $id) {{ {CLUSTER} }} }}");
            show(
                &call(&client, &q, json!({"id": id}), "deleteCluster").await?,
                format,
                cluster_table,
            )
        }
        ClustersCommand::RotateToken { id } => {
            let q = format!(
                "mutation($id: ID!) {{ rotateAgentToken(id: $id) {{ agentToken cluster {{ {CLUSTER} }} }} }}"
            );
            let v = call(&client, &q, json!({"id": id}), "rotateAgentToken").await?;
            with_token(&v, format)
        }
    }
}

pub async fn environments(
    command: EnvironmentsCommand,
    conn: &Connection,
    format: Format,
) -> Result<ExitCode> {
    let client = conn.client()?;
    match command {
        EnvironmentsCommand::Create {
            name,
            cluster_id,
            config,
        } => {
            let q = format!(
                "mutation($name: String!, $cluster: ID!, $config: JSON) {{ createEnvironment(name: $name, clusterId: $cluster, config: $config) {{ {ENVIRONMENT} }} }}"
            );
            let vars = json!({"name": name, "cluster": cluster_id, "config": config_arg(&config)?});
            show(
                &call(&client, &q, vars, "createEnvironment").await?,
                format,
                environment_table,
            )
        }
        EnvironmentsCommand::List { cluster } => {
            let q = format!(
                "query($cluster: ID) {{ environments(cluster: $cluster) {{ {ENVIRONMENT} }} }}"
            );
            show_value_list(
                &call(&client, &q, json!({"cluster": cluster}), "environments").await?,
                format,
                environment_table,
            )
        }
        EnvironmentsCommand::Show { id } => {
            let q = format!("query($id: ID!) {{ environment(id: $id) {{ {ENVIRONMENT} }} }}");
            show(
                &call(&client, &q, json!({"id": id}), "environment").await?,
                format,
                environment_table,
            )
        }
        EnvironmentsCommand::Update { id, name, config } => {
            let q = format!(
                "mutation($id: ID!, $name: String, $config: JSON) {{ updateEnvironment(id: $id, name: $name, config: $config) {{ {ENVIRONMENT} }} }}"
            );
            let vars = json!({"id": id, "name": name, "config": config_arg(&config)?});
            show(
                &call(&client, &q, vars, "updateEnvironment").await?,
                format,
                environment_table,
            )
        }
        EnvironmentsCommand::Delete { id } => {
            let q =
                format!("mutation($id: ID!) {{ deleteEnvironment(id: $id) {{ {ENVIRONMENT} }} }}");
            show(
                &call(&client, &q, json!({"id": id}), "deleteEnvironment").await?,
                format,
                environment_table,
            )
        }
    }
}
