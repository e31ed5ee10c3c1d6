//! # hearth-extension
//!
//! The `hearth` Lambda extension: one process per execution environment that keeps
//! secrets, KMS data keys and a PostgreSQL pool alive across invocations and serves them to
//! the function over HTTP on `127.0.0.1:2773`.
//!
//! # Layout
//! - [`config`]: environment variables parsed once into typed values.
//! - [`lifecycle`]: parse → bind → register → prewarm → event loop → drain.
//! - [`server`]: the loopback listener (connection cap, limits, graceful drain).
//! - [`api`]: routes, the token guard and the handlers.
//! - [`error`]: the one place where errors become JSON responses.
//! - [`cache`]: the read-through cache (TTLs, single-flight, stale-if-error) both stores share.
//! - [`secrets`]: the Secrets Manager cache.
//! - [`parameters`]: the Parameter Store cache.
//! - [`database`]: the PostgreSQL pool (`hearth-db`) fed by the secrets cache.
//! - [`kms`]: KMS data-key caches and ESDK envelope encryption.
//! - [`aws`]: SDK clients built once, one per (service, region).
//! - [`failover`]: the circuit breaker between a service's primary and fallback regions.
//! - [`arn`]: ARN region helpers and the multi-Region key match.
//! - [`metrics`] and [`emf`]: counters, latency summaries, CloudWatch EMF lines.
//! - [`telemetry`]: invocation ends from the Telemetry API, for each invocation's EMF line.
//! - [`flight`]: single-flight calls shared by the secrets and KMS caches.
//! - [`prewarm`]: warming caches at init and on `POST /v1/warm`.
//! - [`logging`]: `tracing` set-up.
//! - [`state`]: what handlers can reach.

pub mod api;
pub mod arn;
pub mod aws;
pub mod cache;
pub mod config;
pub mod database;
pub mod emf;
pub mod error;
pub mod failover;
pub mod flight;
pub mod kms;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod parameters;
pub mod prewarm;
pub mod secrets;
pub mod server;
pub mod state;
pub mod telemetry;
