//! Why the gateway could not start or stopped with an error.
//!
//! Problems with what a terminal sent are not errors of the service: they
//! are answered on the wire (see `message::ResultCode`) and counted.

use crate::auth_codes::StateError;
use crate::registry::RegistryError;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(
        "tenant {tenant:?} has terminals in the registry but no API key in \
         CITYBRAIN_JT808_API_KEYS"
    )]
    MissingKey { tenant: String },
    #[error("ingest client for tenant {tenant:?}: {source}")]
    Client {
        tenant: String,
        source: citybrain_ingest_client::ClientError,
    },
    #[error("admin HTTP server failed: {0}")]
    Admin(std::io::Error),
    #[error("listener failed: {0}")]
    Listener(std::io::Error),
}
