//! HTTP APIs. Handlers here are thin: they turn HTTP into registry calls and back.

pub mod v2;
