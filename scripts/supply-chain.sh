#!/usr/bin/env bash
# Supply-chain checks of every crate the workspace builds, with cargo-deny and deny.toml:
#   - licences, bans (e.g. rsa) and sources (crates.io only): always run, and fail the build;
#   - advisories (RustSec): CI reaches package registries only, so the advisory database is
#     never fetched here. The check runs against a local copy when there is one and fails the
#     build on what it finds; without one (or with one too old to trust) it prints that
#     advisories were SKIPPED and why.
#
# Which advisory database: $ADVISORY_DB (a clone of the RustSec advisory-db repository) when
# set, else cargo-deny's own ($CARGO_HOME/advisory-dbs/advisory-db-*), else cargo-audit's
# ($CARGO_HOME/advisory-db). To get one on a machine with access:
#   git clone https://github.com/RustSec/advisory-db ~/.cargo/advisory-db
# cargo-deny is installed with `cargo install` (pinned version) when missing; run twice, the
# second run installs nothing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO_DENY_VERSION=0.20.2
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}

say() { printf 'supply-chain: %s\n' "$*"; }

if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
    say "installing cargo-deny $CARGO_DENY_VERSION (takes several minutes)"
    # A checker needs no link-time optimisation: this keeps the build to a few minutes.
    CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked >&2
fi

# The whole workspace: the root manifest is also a package, which alone would be the root.
deny=(cargo deny --workspace --locked)

say "licences, bans and sources"
"${deny[@]}" check --hide-inclusion-graph licenses bans sources

# The local clone of the advisory database to use, if any.
find_database() {
    if [ -n "${ADVISORY_DB:-}" ]; then
        echo "$ADVISORY_DB"
        return
    fi
    local candidate
    for candidate in "$CARGO_HOME"/advisory-dbs/advisory-db-* "$CARGO_HOME/advisory-db"; do
        if [ -d "$candidate/crates" ] && [ -d "$candidate/.git" ]; then
            echo "$candidate"
            return
        fi
    done
}

database=$(find_database)
if [ -n "${ADVISORY_DB:-}" ] && [ ! -d "$ADVISORY_DB/crates" ]; then
    say "ADVISORY_DB=$ADVISORY_DB holds no advisory database" >&2
    exit 1
fi
if [ -z "$database" ]; then
    say "advisories SKIPPED: no local RustSec advisory database (set ADVISORY_DB, or clone it to $CARGO_HOME/advisory-db)"
    exit 0
fi

# cargo-deny looks for the database under db-path in a directory named after its URL; a
# private db-path with that one entry, a link to the clone, makes it read exactly this clone.
work=$(mktemp -d /tmp/berth-supply-chain.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir "$work/dbs"
sed "s|^\[advisories\]$|[advisories]\ndb-path = \"$work/dbs\"|" deny.toml >"$work/deny.toml"
# The name cargo-deny expects: it names the path it looked at when there is nothing there.
# --offline: never fetch the database (nor anything else).
probe=$("${deny[@]}" --offline --log-level debug --config "$work/deny.toml" check advisories 2>&1 || true)
expected=$(printf '%s\n' "$probe" | grep -o "$work/dbs/[A-Za-z0-9._-]*" | grep -v "/dbs/$" | head -n 1 || true)
if [ -z "$expected" ]; then
    printf '%s\n' "$probe" | tail -n 20 >&2
    say "cannot tell where cargo-deny looks for its advisory database" >&2
    exit 1
fi
ln -s "$database" "$expected"

say "advisories, against the local database $database (last commit $(git -C "$database" log -1 --format=%cs 2>/dev/null || echo unknown))"
if ! output=$("${deny[@]}" --offline --config "$work/deny.toml" check advisories 2>&1); then
    printf '%s\n' "$output"
    if printf '%s\n' "$output" | grep -q 'repository is stale'; then
        say "advisories SKIPPED: the local advisory database $database is too old to trust; update it (git -C $database pull)"
        exit 0
    fi
    say "advisories FAILED"
    exit 1
fi
printf '%s\n' "$output"
say "advisories ok"
