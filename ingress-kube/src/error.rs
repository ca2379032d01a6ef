//! Errors of the Kubernetes binding.

/// Why the source could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A probe of the API server failed (not reachable, not allowed).
    #[error("probing the API server for {what}: {source}")]
    Probe {
        /// What was probed.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: kube::Error,
    },
}

/// Why a status, Lease or Event write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The API call failed.
    #[error("{what}: {source}")]
    Api {
        /// What was written.
        what: String,
        /// Why it failed.
        #[source]
        source: kube::Error,
    },
    /// The object could not be encoded.
    #[error("encoding {what}: {source}")]
    Encode {
        /// What was encoded.
        what: String,
        /// Why it failed.
        #[source]
        source: serde_json::Error,
    },
}
