//! # hearth
//!
//! The function-side half of Hearth: the wire types shared with the extension, a typed
//! client for the extension's HTTP API, and (feature `runtime`) a warmer layer for
//! `lambda_runtime`.
//!
//! # Layout
//! - [`wire`]: request/response structs, header names and error body (one definition,
//!   used by both the extension and the client).
//! - [`client`] (feature `client`): [`Client`], one async method per API operation, over a
//!   keep-alive connection pool to `127.0.0.1`.
//! - [`warmer`] (feature `runtime`): [`WarmerLayer`], a `tower::Layer` that answers warm-up
//!   pings without running the handler, and [`run`], `lambda_runtime::run` with it applied.
//!
//! The extension depends on this crate with `default-features = false`: wire types only,
//! no HTTP client and no `lambda_runtime`.

pub mod wire;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub use client::{Client, ClientBuilder};

#[cfg(feature = "runtime")]
pub mod warmer;
#[cfg(feature = "runtime")]
pub use warmer::{run, WarmerLayer};
