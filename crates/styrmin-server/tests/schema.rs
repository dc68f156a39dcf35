//! The committed SDL (docs/schema.graphql) is the schema the server serves. Regenerate it
//! with `STYRMIN_UPDATE_SCHEMA=1 cargo test -p styrmin-server --test schema`.

use std::path::Path;

#[test]
fn docs_schema_graphql_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schema.graphql");
    let sdl = styrmin_server::sdl();
    if std::env::var_os("STYRMIN_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &sdl).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "docs/schema.graphql is out of date: run STYRMIN_UPDATE_SCHEMA=1 cargo test -p styrmin-server --test schema"
    );
}
