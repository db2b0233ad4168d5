//! berth's integration tests, one module per concern, linked into a single test binary: one
//! link instead of one per file keeps the build small and fast, and cargo-nextest still runs
//! every test in its own process. Each module drives the real server over HTTP (`common`
//! starts it in-process or as a child process on an ephemeral port).

mod common;

mod api_tokens;
mod auth_matrix;
mod auth_tokens;
mod bad_input;
mod bad_input_corpus;
mod blobs;
mod catalog_challenge;
mod cookies;
mod crash;
mod dashboard;
mod dashboard_trust;
mod data_permissions;
mod deleted_repositories;
mod fsck;
mod full_disk;
mod fuzz_seeds;
mod gc;
mod gc_race;
mod health;
mod listing;
mod login_throttle;
mod manage_api;
mod manifests;
mod memory;
mod metrics;
mod mirror_sync;
mod notifications;
mod oci_client;
mod policy;
mod policy_clients;
mod postgres;
mod proxy_cache_api;
mod proxy_cache_pull;
mod read_cache;
mod replicas;
mod repo_mirror;
mod request_log;
mod reserved_names;
mod robot_rights;
mod s3_storage;
mod schema_equivalence;
mod shutdown;
mod slow_clients;
mod smoke;
mod sparse;
mod storage_conformance;
mod storage_memory;
mod trust;
mod upload_limits;
mod upload_races;
mod uploads;
mod upstream_client;
mod usage_logs;
mod visibility;
