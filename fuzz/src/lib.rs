//! berth's fuzz targets. The properties live in [`checks`], shared with berth's own test
//! `tests/integration/fuzz_seeds.rs`, which runs them over the committed seeds without cargo-fuzz.

pub mod checks;
