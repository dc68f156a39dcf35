//! The local cluster of tests and `styrmin up`.
//!
//! Real: etcd, kube-apiserver and kube-controller-manager (v1.20.2, built from Debian's
//! sources by scripts/kube-binaries.sh) — ReplicaSets, Jobs, garbage collection and
//! namespace finalisation are Kubernetes' own.
//!
//! Test doubles, each in its own module and named as such: the node simulator (what
//! kubelets do), database-backed pods (real PostgreSQL and MariaDB databases on this
//! machine), the Flux stand-in and the Velero stand-in.

pub mod binaries;
pub mod charts;
pub mod cluster;
pub mod crds;
pub mod databases;
pub mod flux;
pub mod kubelet;
pub mod nodes;
pub mod packed;
mod process;
pub mod s3;
pub mod storage;
pub mod tools;
pub mod velero;

pub use cluster::{LocalCluster, Options};
