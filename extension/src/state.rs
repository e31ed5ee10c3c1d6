//! Everything a request handler can reach, built once at init.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::config::Config;
use crate::database::Database;
use crate::kms::KmsService;
use crate::metrics::Metrics;
use crate::parameters::ParametersCache;
use crate::secrets::SecretsCache;

/// Shared application state; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Secrets cache.
    pub secrets: SecretsCache,
    /// Parameter Store cache.
    pub parameters: ParametersCache,
    /// KMS data keys and envelope encryption.
    pub kms: KmsService,
    /// Database pool, when `HEARTH_DB_SECRET_ID` is set.
    pub db: Option<Arc<Database>>,
    /// The request guard's metric handles.
    pub http: Arc<crate::api::guard::HttpMetrics>,
    /// Set once the background prewarm has finished.
    pub prewarmed: Arc<AtomicBool>,
}
