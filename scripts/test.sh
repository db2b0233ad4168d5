#!/usr/bin/env bash
# The one command that runs every berth test on a fresh machine:
#   1. installs what the tests need (Rust components, the clientlab's real clients),
#   2. runs lint, unit and integration tests (cargo),
#   3. builds the release binary, starts berth on a free loopback port and drives it with the
#      real clients of ../shared/clientlab (skopeo, podman, buildah, umoci, Helm SDK, oras).
# Prints a closing "N passed, N failed" line for the clientlab flows; exits non-zero on failure.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CLIENTLAB=${CLIENTLAB:-$ROOT/../shared/clientlab}
FLOWS=${FLOWS:-"a b c d e f g"}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
cargo --version

step "format and lint"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "unit and integration tests"
cargo test --locked --all-targets

step "release build"
cargo build --release --locked

step "real clients (clientlab)"
if [ ! -d "$CLIENTLAB" ]; then
  echo "clientlab not found at $CLIENTLAB (set CLIENTLAB=...)" >&2
  exit 1
fi
bash "$CLIENTLAB/install.sh"

WORK=$(mktemp -d /tmp/berth-test.XXXXXX)
BERTH_PID=
cleanup() {
  if [ -n "$BERTH_PID" ]; then kill "$BERTH_PID" 2>/dev/null || true; wait "$BERTH_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Starts berth on an ephemeral port and sets BERTH_ADDR from its ready line.
start_berth() {
  local log=$WORK/berth.log
  NO_COLOR=1 BERTH_LOG=info ./target/release/berth serve --listen 127.0.0.1:0 --data-dir "$WORK/data" "$@" >"$log" 2>&1 &
  BERTH_PID=$!
  for _ in $(seq 1 600); do
    if grep -q 'berth ready on' "$log"; then
      BERTH_ADDR=$(grep -o 'berth ready on http://[0-9.:]*' "$log" | head -1 | sed 's|.*http://||')
      return 0
    fi
    kill -0 "$BERTH_PID" 2>/dev/null || { cat "$log"; echo "berth exited" >&2; return 1; }
    sleep 0.1
  done
  echo "berth did not become ready" >&2
  return 1
}

start_berth
echo "berth at $BERTH_ADDR"
passed=0; failed=0; failed_names=()
for flow in $FLOWS; do
  if REGISTRY=$BERTH_ADDR bash "$CLIENTLAB/$flow.sh" >"$WORK/flow-$flow.log" 2>&1; then
    passed=$((passed + 1)); tail -1 "$WORK/flow-$flow.log"
  else
    failed=$((failed + 1)); failed_names+=("$flow"); tail -20 "$WORK/flow-$flow.log"
  fi
done
echo "clientlab: $passed passed, $failed failed${failed_names:+ (${failed_names[*]})}"
[ "$failed" -eq 0 ]
