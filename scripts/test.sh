#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs the
# format check, clippy with warnings as errors, and every test of the workspace.
#
#   scripts/test.sh            everything
#   scripts/test.sh -p NAME    only one crate's tests (after the same checks)
#
# Tools go to ${STYRMIN_CACHE:-~/.cache/styrmin}; a second run finds them there at once.
set -Eeuo pipefail

cd "$(dirname "$0")/.."
. scripts/lib/tools.sh

step() { printf '\n[test] %s\n' "$*"; }

step "tools"
ensure_rust_toolchain
ensure_python_jinja2
ensure_helm
ensure_kubectl
ensure_rclone
ensure_postgres
ensure_mariadb
ensure_chromium
trap 'drop_mariadb_run_databases; drop_postgres_run_database' EXIT
export STYRMIN_HELM STYRMIN_RCLONE STYRMIN_TEST_POSTGRES_URL STYRMIN_TEST_MARIADB_URL STYRMIN_CHROMIUM STYRMIN_CHROMEDRIVER
# The local cluster's control plane: built once (about 5 minutes), then cached.
STYRMIN_KUBE_BIN="$(bash scripts/kube-binaries.sh --print-dir)"
export STYRMIN_KUBE_BIN
echo "helm: $STYRMIN_HELM ($("$STYRMIN_HELM" version --short))"
echo "jinja2: $(python3 -c 'import jinja2; print(jinja2.__version__)')"
echo "chromium: $("$STYRMIN_CHROMIUM" --version 2>/dev/null | head -1); $("$STYRMIN_CHROMEDRIVER" --version | head -1)"
echo "rclone: $STYRMIN_RCLONE ($("$STYRMIN_RCLONE" version | head -1))"
echo "postgres: $(psql "$STYRMIN_TEST_POSTGRES_URL" -qAtc 'show server_version') (database ${STYRMIN_TEST_POSTGRES_URL##*/})"
echo "mariadb: $(mariadb --no-defaults -h127.0.0.1 -P3306 -uroot -N -B -e 'SELECT VERSION()')"
echo "kube binaries: $STYRMIN_KUBE_BIN ($("$STYRMIN_KUBE_BIN/kube-apiserver" --version))"

# One build of everything, not an edit loop: incremental caches would only double the
# target directory (tens of GB on a small disk) and the build time.
export CARGO_INCREMENTAL=0
# The Jinja2 differential fuzzer's short form: every regression case, a fixed seed's cases,
# then a count of new cases from a seed derived from the engine's sources, so a commit runs
# the same cases here and in CI (a failure prints the seed that replays it).
export STYRMIN_FUZZ_NEW_CASES="${STYRMIN_FUZZ_NEW_CASES:-600}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "python: the action helper package (styrmin_backend, the Prefect stand-in)"
python3 -m unittest discover -s python/tests

step "cargo test"
cargo test --workspace --locked "$@"
