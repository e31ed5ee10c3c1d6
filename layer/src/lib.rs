//! # hearth
//!
//! The function-side half of Hearth: the wire types shared with the extension, a typed
//! client for the extension's HTTP API, and (feature `runtime`) a warmer layer for
//! `lambda_runtime`.
//!
//! # Layout
//! - [`wire`]: request/response structs, header names and error body (one definition,
//!   used by both the extension and the client).

pub mod wire;
