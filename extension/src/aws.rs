//! AWS SDK clients: built once at init and reused for the life of the environment
//! (connection reuse is the point), with bounded connect, attempt and operation timeouts
//! and the SDK's own retry modes rather than a hand-written loop.

use std::time::Duration;

use aws_config::retry::{RetryConfig, RetryMode};
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::config::AwsConfig;

/// Builds the shared SDK configuration. No network call happens here: credentials and
/// region come from the environment Lambda provides, and credentials resolve lazily.
pub async fn sdk_config(cfg: &AwsConfig) -> SdkConfig {
    let retry = match cfg.retry_mode {
        RetryModeSetting::Standard => RetryConfig::standard(),
        RetryModeSetting::Adaptive => RetryConfig::adaptive(),
    }
    .with_max_attempts(cfg.max_attempts)
    .with_initial_backoff(Duration::from_millis(50));
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(cfg.connect_timeout)
        .operation_attempt_timeout(cfg.attempt_timeout)
        .operation_timeout(cfg.operation_timeout)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeouts)
        .load()
        .await
}

/// The SDK's retry modes, as configured by `HEARTH_AWS_RETRY_MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryModeSetting {
    /// Exponential backoff with jitter and a retry quota.
    Standard,
    /// Standard plus client-side rate limiting when throttled.
    Adaptive,
}

impl From<RetryModeSetting> for RetryMode {
    fn from(m: RetryModeSetting) -> Self {
        match m {
            RetryModeSetting::Standard => RetryMode::Standard,
            RetryModeSetting::Adaptive => RetryMode::Adaptive,
        }
    }
}
