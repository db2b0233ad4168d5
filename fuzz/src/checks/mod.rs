//! The property each fuzz target checks, as a plain function that panics when the property is
//! violated.
//!
//! The fuzz targets (`fuzz/fuzz_targets/`) call these with libFuzzer's inputs. berth's test
//! `tests/integration/fuzz_seeds.rs` includes this module and calls them with the committed seeds
//! (`fuzz/seeds/<target>/`) and minimized crash inputs (`fuzz/regressions/<target>/`), so the
//! properties also run in the normal test suite, without cargo-fuzz.
//!
//! Inputs whose first byte is a small control value (below [`input::MODE_LIMIT`]) select a
//! structured mode that builds well-formed values from the remaining bytes; any other input is
//! used as raw text. Raw seeds therefore stay readable.

pub mod content_range;
pub mod input;
pub mod manifest;
pub mod names;
pub mod policy;
pub mod token;

/// Runs the property of the target called `target`; `false` when there is no such target.
pub fn run(target: &str, data: &[u8]) -> bool {
    let check: fn(&[u8]) = match target {
        "content_range" => content_range::check,
        "manifest" => manifest::check,
        "names" => names::check,
        "policy" => policy::check,
        "token" => token::check,
        _ => return false,
    };
    check(data);
    true
}

/// The targets [`run`] knows.
pub const TARGETS: [&str; 5] = ["content_range", "manifest", "names", "policy", "token"];
