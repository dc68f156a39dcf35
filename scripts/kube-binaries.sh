#!/usr/bin/env bash
# kube-binaries.sh: make a real Kubernetes v1.20.2 control plane (etcd, kube-apiserver,
# kube-controller-manager) available offline, in one directory.
#
# Upstream publishes no kube-apiserver that we can reach offline, so this script builds one from
# Debian's `kubernetes` source package. That package (it only ships kubectl) has the full v1.20.2
# tree with vendor/. Debian's etcd-server supplies etcd. See
# /work/shared/reference/feasibility.md §1 for how the recipe was worked out.
#
# Run with --help for usage. Safe to run again: when the binaries are there it returns at once.

set -Eeuo pipefail

readonly K8S_VERSION=1.20.2
readonly PROG=kube-binaries
readonly CACHE_DIR="${STYRMIN_CACHE:-$HOME/.cache/styrmin}"
readonly ROOT="$CACHE_DIR/kubernetes-$K8S_VERSION"
readonly BIN="$ROOT/bin"
readonly WORK="$ROOT/work"                     # sources, GOPATH, Go build cache (kept between runs)
readonly DL="$ROOT/dl"                         # downloaded Debian source package
readonly LOG="$ROOT/build.log"                 # output of the noisy steps (last slow run)
readonly SRC="$WORK/gopath/src/k8s.io/kubernetes"
readonly REFLECT2_DEB=/usr/share/gocode/src/github.com/modern-go/reflect2
readonly ETCD_SYSTEM=/usr/bin/etcd
readonly DEBSRC_BASENAME=styrmin-deb-src       # .sources or .list under /etc/apt/sources.list.d

usage() {
  cat <<EOF
Usage: scripts/kube-binaries.sh [--print-dir] [--force] [-h|--help]

Puts etcd, kube-apiserver and kube-controller-manager (Kubernetes v$K8S_VERSION) into
  \${STYRMIN_CACHE:-\$HOME/.cache/styrmin}/kubernetes-$K8S_VERSION/bin
  (here: $BIN)
building them the first time (about 5-8 min on 2 cores, needs root for apt-get, about 2 GB of disk
space under the cache). Later runs return in well under a second.

What the first run does:
  * apt-get install etcd-server golang-go rsync golang-github-modern-go-reflect2-dev
    (apt-get update only when something is not found);
  * adds /etc/apt/sources.list.d/$DEBSRC_BASENAME.sources (deb-src twin of the image's own Debian
    sources) when no deb-src is configured, and leaves it in place;
  * apt-get source --download-only kubernetes (Debian's 1.20.5+really1.20.2), replaces the
    vendored modern-go/reflect2 with Debian's v1.0.2 (the vendored v1.0.1 crashes under Go >= 1.18),
    runs 'make gen_openapi', then 'go build' in GOPATH mode with version ldflags.

Options:
  --print-dir   print only the bin directory on stdout (progress goes to stderr); builds if needed
  --force       rebuild kube-apiserver and kube-controller-manager (reuses sources and Go cache)
  -h, --help    this text

Log of the noisy steps: $LOG
EOF
}

# ---------------------------------------------------------------------------------------------
# output helpers: progress goes to stderr, so that --print-dir keeps stdout clean

say() { printf '[%s] %s\n' "$PROG" "$*" >&2; [[ ! -d $ROOT ]] || printf '[%s] %s\n' "$PROG" "$*" >>"$LOG"; }

die() {
  trap - ERR
  printf '[%s] error: %s\n' "$PROG" "$*" >&2
  exit 1
}

# die and show the end of the log
die_log() {
  trap - ERR
  printf '[%s] error: %s; see %s\n' "$PROG" "$*" "$LOG" >&2
  if [[ -s $LOG ]]; then
    printf '[%s] last lines of %s:\n' "$PROG" "$LOG" >&2
    tail -n 25 "$LOG" | sed 's/^/    /' >&2
  fi
  exit 1
}

trap 'die "unexpected failure at line $LINENO: $BASH_COMMAND"' ERR

# run_step NAME CMD...: run CMD with its output appended to the log; fail with the step name
run_step() {
  local name=$1; shift
  printf '\n===== %s: %s =====\n' "$(date '+%F %T')" "$name" >>"$LOG"
  "$@" >>"$LOG" 2>&1 || die_log "step '$name' failed"
}

# ---------------------------------------------------------------------------------------------
# state checks

apiserver_version() { "$BIN/kube-apiserver" --version 2>/dev/null; }

kube_built() {
  [[ -x $BIN/kube-apiserver && -x $BIN/kube-controller-manager ]] || return 1
  [[ $(apiserver_version) == "Kubernetes v$K8S_VERSION" ]]
}

all_ready() { [[ -x $BIN/etcd ]] && kube_built; }

print_result() {
  if (( PRINT_DIR )); then
    printf '%s\n' "$BIN"
    return
  fi
  local etcd_v
  etcd_v=$("$BIN/etcd" --version 2>&1) || true
  printf '[%s] Kubernetes control-plane binaries in: %s\n' "$PROG" "$BIN"
  printf '  kube-apiserver --version:          %s\n' "$(apiserver_version)"
  printf '  kube-controller-manager --version: %s\n' "$("$BIN/kube-controller-manager" --version 2>/dev/null)"
  printf '  etcd --version:                    %s\n' "${etcd_v%%$'\n'*}"
}

# ---------------------------------------------------------------------------------------------
# apt helpers

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0

as_root() {
  if (( EUID == 0 )); then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n -E "$@"
  else
    die "root is needed for: $* (run as root, or with passwordless sudo)"
  fi
}

apt_update_once() {
  (( APT_UPDATED )) && return 1
  say "apt-get update"
  run_step "apt-get update" as_root apt-get update -q
  APT_UPDATED=1
}

pkg_installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

pkg_has_candidate() {
  local c
  c=$(apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2 }')
  [[ -n $c && $c != "(none)" ]]
}

# ensure_packages PKG...: install the missing ones; apt-get update only if something is not found
ensure_packages() {
  local p missing=() unknown=()
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  (( ${#missing[@]} )) || return 0

  for p in "${missing[@]}"; do pkg_has_candidate "$p" || unknown+=("$p"); done
  if (( ${#unknown[@]} )); then
    apt_update_once || true
    unknown=()
    for p in "${missing[@]}"; do pkg_has_candidate "$p" || unknown+=("$p"); done
    (( ${#unknown[@]} == 0 )) ||
      die "Debian package(s) not found in the configured apt sources: ${unknown[*]}"
  fi

  say "installing ${missing[*]} (apt-get)"
  printf '\n===== %s: apt-get install %s =====\n' "$(date '+%F %T')" "${missing[*]}" >>"$LOG"
  if ! as_root apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1; then
    # a stale index can point at files that are gone from the mirror: refresh once and retry
    apt_update_once || die_log "step 'apt-get install ${missing[*]}' failed"
    run_step "apt-get install ${missing[*]}" \
      as_root apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  for p in "${missing[@]}"; do
    pkg_installed "$p" || die_log "package '$p' is still not installed after apt-get install"
  done
}

kubernetes_src_known() { apt-cache showsrc kubernetes 2>/dev/null | grep -q '^Package: kubernetes$'; }

# Write a deb-src twin of the image's own Debian sources (no host is named here).
write_debsrc_file() {
  local tmp dest
  tmp=$(mktemp)
  if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
    dest=/etc/apt/sources.list.d/$DEBSRC_BASENAME.sources
    {
      echo "# Added by styrmin scripts/kube-binaries.sh: deb-src twin of debian.sources,"
      echo "# needed for 'apt-get source kubernetes'. Safe to delete."
      echo
      sed -E 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources
    } >"$tmp"
  elif [[ -f /etc/apt/sources.list ]] && grep -Eq '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list; then
    dest=/etc/apt/sources.list.d/$DEBSRC_BASENAME.list
    {
      echo "# Added by styrmin scripts/kube-binaries.sh: deb-src twin of sources.list,"
      echo "# needed for 'apt-get source kubernetes'. Safe to delete."
      sed -nE 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' /etc/apt/sources.list
    } >"$tmp"
  else
    rm -f "$tmp"
    die "found neither /etc/apt/sources.list.d/debian.sources nor deb lines in /etc/apt/sources.list; cannot enable deb-src"
  fi
  say "enabling deb-src: $dest"
  as_root install -m 0644 "$tmp" "$dest"
  rm -f "$tmp"
}

ensure_kubernetes_source_index() {
  kubernetes_src_known && return 0
  if ! ls /etc/apt/sources.list.d/$DEBSRC_BASENAME.* >/dev/null 2>&1; then
    write_debsrc_file
  fi
  apt_update_once || true
  kubernetes_src_known ||
    die "Debian source package 'kubernetes' not found even with deb-src enabled (see 'apt-cache showsrc kubernetes')"
}

# ---------------------------------------------------------------------------------------------
# build steps

orig_tarball() {
  local f
  for f in "$DL"/kubernetes_*.orig.tar.*; do
    [[ -f $f && $f != *.asc ]] && { printf '%s\n' "$f"; return 0; }
  done
  return 1
}

download_source() {
  orig_tarball >/dev/null && return 0
  ensure_kubernetes_source_index
  say "downloading Debian source package 'kubernetes' (≈34 MB)"
  rm -rf "$DL.tmp"; mkdir -p "$DL.tmp"
  run_step "apt-get source --download-only kubernetes" \
    bash -c 'cd "$1" && apt-get source -q --download-only kubernetes' _ "$DL.tmp"
  rm -rf "$DL"; mv "$DL.tmp" "$DL"
  orig_tarball >/dev/null || die_log "apt-get source gave no kubernetes_*.orig.tar.* in $DL"
}

prepare_source() {
  local orig stamp="$WORK/.source-ready" top x
  orig=$(orig_tarball)
  case ${orig##*/} in
    *[!0-9.]"$K8S_VERSION".orig.tar.*) ;;
    *) die "Debian's kubernetes source is ${orig##*/}, not upstream v$K8S_VERSION; this script expects $K8S_VERSION" ;;
  esac
  if [[ -f $stamp && $(<"$stamp") == "${orig##*/}" && -d $SRC ]]; then
    return 0
  fi
  [[ -f $REFLECT2_DEB/reflect2.go ]] ||
    die "missing $REFLECT2_DEB (package golang-github-modern-go-reflect2-dev)"

  say "unpacking ${orig##*/}"
  rm -f "$stamp" "$WORK/.openapi-ready"
  rm -rf "$WORK/gopath" "$WORK/unpack.tmp"
  mkdir -p "$WORK/unpack.tmp"
  run_step "tar -xf ${orig##*/}" tar -xf "$orig" -C "$WORK/unpack.tmp"
  top=""
  for x in "$WORK"/unpack.tmp/*/; do
    [[ -d ${x}cmd/kube-apiserver && -d ${x}vendor ]] && top=${x%/}
  done
  [[ -n $top ]] || die "${orig##*/} has no directory with cmd/kube-apiserver and vendor/"

  # vendored reflect2 v1.0.1 segfaults under Go >= 1.18 (reflect2.UnsafeIterate): use Debian's v1.0.2
  say "replacing vendored github.com/modern-go/reflect2 with Debian's copy"
  rm -rf "$top/vendor/github.com/modern-go/reflect2"
  cp -rL "$REFLECT2_DEB" "$top/vendor/github.com/modern-go/reflect2"

  mkdir -p "${SRC%/*}"
  mv "$top" "$SRC"
  rm -rf "$WORK/unpack.tmp"
  printf '%s\n' "${orig##*/}" >"$stamp"
}

gen_openapi() {
  local stamp="$WORK/.openapi-ready" gen="$SRC/pkg/generated/openapi/zz_generated.openapi.go"
  [[ -f $stamp && -s $gen ]] && return 0
  say "generating OpenAPI definitions: make gen_openapi (≈30 s)"
  run_step "make gen_openapi" bash -c 'cd "$1" && make gen_openapi' _ "$SRC"
  [[ -s $gen ]] || die_log "step 'make gen_openapi' did not produce ${gen#"$SRC"/}"
  touch "$stamp"
}

# build_binary NAME ETA: go build ./cmd/NAME into $BIN/NAME via a temporary file
build_binary() {
  local name=$1 eta=$2 tmp="$BIN/.$1.partial.$$" ld p v
  ld="-s -w"
  for p in k8s.io/kubernetes/vendor/k8s.io/component-base/version \
           k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=${K8S_VERSION%%.*}"
    ld+=" -X $p.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION") -X $p.gitTreeState=clean"
  done
  say "building $name ($eta)"
  run_step "go build ./cmd/$name" bash -c 'cd "$1" && shift && exec "$@"' _ "$SRC" \
    env GO111MODULE=off GOPATH="$WORK/gopath" CGO_ENABLED=0 \
    go build -ldflags "$ld" -o "$tmp" "./cmd/$name"
  v=$("$tmp" --version 2>&1) || die_log "built $name does not run ('$name --version' failed: $v)"
  [[ $v == "Kubernetes v$K8S_VERSION" ]] || die "built $name reports '$v', expected 'Kubernetes v$K8S_VERSION'"
  mv -f "$tmp" "$BIN/$name"
}

cleanup() { rm -f "$BIN"/.*.partial."$$" 2>/dev/null || true; }

# ---------------------------------------------------------------------------------------------

PRINT_DIR=0
FORCE=0
while (( $# )); do
  case $1 in
    --print-dir) PRINT_DIR=1 ;;
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) printf '[%s] error: unknown argument: %s\n' "$PROG" "$1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# fast path: no lock, no apt, no dpkg
if (( ! FORCE )) && all_ready; then
  print_result
  exit 0
fi

mkdir -p "$BIN" "$WORK" "$DL"
exec 9>"$ROOT/.lock"
if ! flock -n 9; then
  printf '[%s] another kube-binaries run holds %s; waiting\n' "$PROG" "$ROOT/.lock" >&2
  flock 9
fi
if (( ! FORCE )) && all_ready; then   # the other run may have done the work
  print_result
  exit 0
fi

trap cleanup EXIT
[[ ! -f $LOG ]] || mv -f "$LOG" "$LOG.prev"
: >"$LOG"
say "preparing Kubernetes v$K8S_VERSION binaries in $BIN (log: $LOG)"

ensure_packages etcd-server
[[ -x $ETCD_SYSTEM ]] || die "$ETCD_SYSTEM missing although etcd-server is installed"
ln -sfn "$ETCD_SYSTEM" "$BIN/etcd"

if (( FORCE )) || ! kube_built; then
  ensure_packages golang-go rsync golang-github-modern-go-reflect2-dev

  # the build uses Debian's Go and keeps its caches under the work dir
  [[ -x /usr/lib/go/bin/go ]] && PATH="/usr/lib/go/bin:$PATH"
  command -v go >/dev/null || die "no 'go' in PATH after installing golang-go"
  export GOCACHE="$WORK/gocache" GOTMPDIR="" GOFLAGS="" GOTOOLCHAIN=local
  unset GOPATH GO111MODULE GOROOT
  printf '%s\n' "$(go version)" >>"$LOG"

  download_source
  prepare_source
  gen_openapi
  build_binary kube-apiserver "≈3-4 min on 2 cores"
  build_binary kube-controller-manager "≈1 min on 2 cores, reusing the Go build cache"
fi

all_ready || die "binaries still incomplete in $BIN after the build"
say "done in $((SECONDS / 60))m$((SECONDS % 60))s"
print_result
