//! What can go wrong in one reconcile, each with the object it concerns.

use kube::runtime::finalizer;
use styrmin_core::children::RenderChildrenError;

use crate::bundle;

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error(
        "StyrminDeployment {namespace}/{name}: spec.context does not read as a Context: {source}"
    )]
    Context {
        namespace: String,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Bundle(#[from] bundle::ReadError),
    #[error("rendering the children: {0}")]
    Render(#[from] RenderChildrenError),
    #[error("applying {kind} {namespace}/{name}: {}", api_message(source))]
    Apply {
        kind: String,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {namespace}/{name}: {}", api_message(source))]
    Delete {
        kind: String,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("scaling {kind} {namespace}/{name}: {}", api_message(source))]
    Scale {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "writing the status of StyrminDeployment {namespace}/{name}: {}",
        api_message(source)
    )]
    Status {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Not an error so much as "not yet": the finalizer stays until they are gone.
    #[error("{left} object(s) of StyrminDeployment {namespace}/{name} are still being deleted")]
    ChildrenLeft {
        namespace: String,
        name: String,
        left: usize,
    },
    #[error("the watch of {0} has not listed its objects yet")]
    NotSynced(String),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<OperatorError>>),
}

impl OperatorError {
    /// Whether the reconcile only waits for the cluster (retried without a warning).
    pub fn is_waiting(&self) -> bool {
        match self {
            OperatorError::ChildrenLeft { .. } | OperatorError::NotSynced(_) => true,
            OperatorError::Finalizer(e) => match e.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.is_waiting()
                }
                _ => false,
            },
            _ => false,
        }
    }
}

/// A Kubernetes error as a person reads it: the API server's own message (a 403 says
/// which verb on which resource), not the whole status object.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

/// Whether the API server answered 404 Not Found.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}
