//! HTTP APIs. Handlers here are thin: they turn HTTP into registry, auth or account calls and
//! back.

pub mod challenge;
pub mod dates;
pub mod manage;
pub mod request_log;
pub mod token;
pub mod v2;
