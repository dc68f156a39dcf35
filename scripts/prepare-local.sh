#!/usr/bin/env bash
# prepare-local.sh: what `styrmin up` needs on this machine — the local cluster's control
# plane (built once from Debian's sources, about 5 minutes), helm, rclone and kubectl.
# Progress goes to stderr; the last lines on stdout are NAME=VALUE for `styrmin up`.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/tools.sh
{
  ensure_helm
  ensure_kubectl
  ensure_rclone
} >&2
kube_bin="$(bash scripts/kube-binaries.sh --print-dir)"
echo "STYRMIN_KUBE_BIN=$kube_bin"
echo "STYRMIN_HELM=$STYRMIN_HELM"
echo "STYRMIN_RCLONE=$STYRMIN_RCLONE"
