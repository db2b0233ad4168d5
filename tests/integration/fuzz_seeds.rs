//! Runs every fuzz target's property over its committed seeds (`fuzz/seeds/<target>/`) and the
//! minimized inputs of crashes the fuzzer found (`fuzz/regressions/<target>/`), so the
//! properties are checked by `cargo test` without cargo-fuzz. The properties themselves live in
//! `fuzz/src/checks/`, shared with the fuzz targets; see README "Fuzzing".

#[allow(dead_code)]
#[path = "../../fuzz/src/checks/mod.rs"]
mod checks;

use std::path::Path;

#[test]
fn fuzz_properties_hold_on_committed_inputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for target in checks::TARGETS {
        let mut inputs = 0;
        for dir in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            let mut paths: Vec<_> = entries.map(|e| e.expect("readable").path()).collect();
            paths.sort();
            for path in paths {
                let data = std::fs::read(&path).expect("readable input");
                eprintln!("{target}: {}", path.display());
                assert!(checks::run(target, &data));
                inputs += 1;
            }
        }
        assert!(inputs > 0, "fuzz/seeds/{target} has seeds");
    }
}
