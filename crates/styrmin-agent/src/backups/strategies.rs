//! The commands each strategy runs inside the component's pod (SPEC §9): a dump written to
//! stdout, a load read from stdin. Connection details come from the container's
//! environment — the variables the database's own tools read (`PGUSER`…, `MYSQL_HOST`…),
//! then the official images' (`POSTGRES_USER`, `MARIADB_DATABASE`…) — unless the
//! driver's `backup` block overrides them (`user`, `password`, `database`, `host`, `port`).
//! Pure: the scripts are built here and run through exec elsewhere.

use std::collections::BTreeMap;

use styrmin_core::driver::BackupKind;

/// The override keys a driver's `backup` block may set.
pub const OVERRIDE_KEYS: &[&str] = &["user", "password", "database", "host", "port"];

/// A word quoted for `sh` (single quotes, embedded ones escaped).
pub fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `STYRMIN_BACKUP_USER='…'` assignments for the overrides the script reads, so values
/// reach the script as data, never as code.
fn override_assignments(overrides: &BTreeMap<String, String>) -> String {
    OVERRIDE_KEYS
        .iter()
        .filter_map(|key| {
            overrides.get(*key).map(|value| {
                format!(
                    "STYRMIN_BACKUP_{}={}\n",
                    key.to_ascii_uppercase(),
                    quote(value)
                )
            })
        })
        .collect()
}

/// Unknown override keys (a driver's typo), named in the component's error.
pub fn unknown_overrides(overrides: &BTreeMap<String, String>) -> Vec<String> {
    overrides
        .keys()
        .filter(|k| !OVERRIDE_KEYS.contains(&k.as_str()))
        .cloned()
        .collect()
}

const POSTGRES_CONNECTION: &str = r#"export PGUSER="${STYRMIN_BACKUP_USER:-${PGUSER:-${POSTGRES_USER:-postgres}}}"
export PGDATABASE="${STYRMIN_BACKUP_DATABASE:-${PGDATABASE:-${POSTGRES_DB:-$PGUSER}}}"
p="${STYRMIN_BACKUP_PASSWORD:-${PGPASSWORD:-${POSTGRES_PASSWORD:-}}}"
if [ -n "$p" ]; then export PGPASSWORD="$p"; fi
if [ -n "${STYRMIN_BACKUP_HOST:-}" ]; then export PGHOST="$STYRMIN_BACKUP_HOST"; fi
if [ -n "${STYRMIN_BACKUP_PORT:-}" ]; then export PGPORT="$STYRMIN_BACKUP_PORT"; fi
"#;

const MARIADB_CONNECTION: &str = r#"u="${STYRMIN_BACKUP_USER:-${MARIADB_USER:-${MYSQL_USER:-}}}"
if [ -n "$u" ]; then
  p="${STYRMIN_BACKUP_PASSWORD:-${MARIADB_PASSWORD:-${MYSQL_PASSWORD:-}}}"
else
  u=root
  p="${STYRMIN_BACKUP_PASSWORD:-${MARIADB_ROOT_PASSWORD:-${MYSQL_ROOT_PASSWORD:-}}}"
fi
if [ -n "$p" ]; then export MYSQL_PWD="$p"; fi
db="${STYRMIN_BACKUP_DATABASE:-${MARIADB_DATABASE:-${MYSQL_DATABASE:-}}}"
if [ -z "$db" ]; then echo "no database named: set MARIADB_DATABASE in the pod or database in the driver's backup block" >&2; exit 2; fi
if [ -n "${STYRMIN_BACKUP_HOST:-}" ]; then export MYSQL_HOST="$STYRMIN_BACKUP_HOST"; fi
if [ -n "${STYRMIN_BACKUP_PORT:-}" ]; then export MYSQL_TCP_PORT="$STYRMIN_BACKUP_PORT"; fi
"#;

const MONGODB_CONNECTION: &str = r#"u="${STYRMIN_BACKUP_USER:-${MONGO_INITDB_ROOT_USERNAME:-}}"
p="${STYRMIN_BACKUP_PASSWORD:-${MONGO_INITDB_ROOT_PASSWORD:-}}"
set -- --host="${STYRMIN_BACKUP_HOST:-127.0.0.1}" --port="${STYRMIN_BACKUP_PORT:-27017}"
if [ -n "$u" ]; then set -- "$@" --username="$u" --password="$p" --authenticationDatabase=admin; fi
if [ -n "${STYRMIN_BACKUP_DATABASE:-}" ]; then set -- "$@" --db="$STYRMIN_BACKUP_DATABASE"; fi
"#;

const NEO4J_CONNECTION: &str = r#"db="${STYRMIN_BACKUP_DATABASE:-neo4j}"
"#;

/// The `sh -c` script that writes the component's dump to stdout; `None` for strategies
/// that dump nothing (`disk`, `action`).
pub fn dump_script(kind: BackupKind, overrides: &BTreeMap<String, String>) -> Option<String> {
    let (connection, command) = match kind {
        BackupKind::Postgres => (POSTGRES_CONNECTION, "exec pg_dump -Fc"),
        BackupKind::Mariadb => (
            MARIADB_CONNECTION,
            r#"exec mariadb-dump --single-transaction --routines --triggers --user="$u" "$db""#,
        ),
        BackupKind::Mongodb => (MONGODB_CONNECTION, r#"exec mongodump --archive "$@""#),
        BackupKind::Neo4j => (
            NEO4J_CONNECTION,
            r#"exec neo4j-admin database dump "$db" --to-stdout"#,
        ),
        BackupKind::Disk | BackupKind::Action => return None,
    };
    Some(format!(
        "set -e\n{}{connection}{command}\n",
        override_assignments(overrides)
    ))
}

/// The `sh -c` script that loads a dump from stdin (after the volumes are back).
pub fn load_script(kind: BackupKind, overrides: &BTreeMap<String, String>) -> Option<String> {
    let (connection, command) = match kind {
        BackupKind::Postgres => (
            POSTGRES_CONNECTION,
            r#"exec pg_restore --clean --if-exists --no-owner --dbname="$PGDATABASE""#,
        ),
        BackupKind::Mariadb => (MARIADB_CONNECTION, r#"exec mariadb --user="$u" "$db""#),
        BackupKind::Mongodb => (
            MONGODB_CONNECTION,
            r#"exec mongorestore --archive --drop "$@""#,
        ),
        BackupKind::Neo4j => (
            NEO4J_CONNECTION,
            r#"exec neo4j-admin database load "$db" --from-stdin --overwrite-destination=true"#,
        ),
        BackupKind::Disk | BackupKind::Action => return None,
    };
    Some(format!(
        "set -e\n{}{connection}{command}\n",
        override_assignments(overrides)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Override values are quoted data: a value with quotes and `$()` stays a value.
    #[test]
    fn overrides_are_assignments_of_quoted_values() {
        let script = dump_script(
            BackupKind::Postgres,
            &overrides(&[("user", "app"), ("password", "it's $(rm -rf /)")]),
        )
        .unwrap();
        assert!(script.contains("STYRMIN_BACKUP_USER='app'\n"), "{script}");
        assert!(
            script.contains(r"STYRMIN_BACKUP_PASSWORD='it'\''s $(rm -rf /)'"),
            "{script}"
        );
        assert!(script.ends_with("exec pg_dump -Fc\n"));
        assert_eq!(
            unknown_overrides(&overrides(&[("usr", "x"), ("user", "y")])),
            vec!["usr"]
        );
    }

    /// Each database strategy dumps and loads with its own tool; disk and action have no
    /// script.
    #[test]
    fn each_strategy_uses_its_tool() {
        let none = BTreeMap::new();
        let dump = |k| dump_script(k, &none).unwrap_or_default();
        let load = |k| load_script(k, &none).unwrap_or_default();
        assert!(dump(BackupKind::Mariadb).contains("mariadb-dump --single-transaction"));
        assert!(load(BackupKind::Postgres).contains("pg_restore --clean --if-exists"));
        assert!(dump(BackupKind::Mongodb).contains("mongodump --archive"));
        assert!(load(BackupKind::Mongodb).contains("mongorestore --archive --drop"));
        assert!(dump(BackupKind::Neo4j).contains("neo4j-admin database dump"));
        assert!(load(BackupKind::Mariadb).contains("exec mariadb "));
        assert!(dump_script(BackupKind::Disk, &none).is_none());
        assert!(load_script(BackupKind::Action, &none).is_none());
    }
}
