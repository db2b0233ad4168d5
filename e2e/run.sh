#!/usr/bin/env bash
# End-to-end browser tests of berth's web dashboard, in Debian's headless Chromium driven by
# playwright-core from Node's test runner. From the repository root, after a build:
#   bash e2e/run.sh            (or `bash e2e/run.sh install`: only install what it needs)
# It installs only what is missing (Chromium and fonts from apt, e2e/node_modules with npm ci,
# the clientlab's clients), starts its own berth ($ROOT/target/release/berth) on a free
# loopback port with a fresh data directory, creates the accounts, seeds content with real
# clients (seed.sh), runs the tests and stops berth. Screenshots and logs stay in a temporary
# folder whose name is printed. Exits non-zero when anything fails; the last line is
# "e2e: N passed, N failed".
# Env: CLIENTLAB (default $ROOT/../shared/clientlab), BERTH_BIN (default
# $ROOT/target/release/berth), E2E_TESTS (test files, default dashboard.test.mjs).
set -euo pipefail
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$E2E_DIR")
CLIENTLAB=${CLIENTLAB:-$ROOT/../shared/clientlab}
BERTH_BIN=${BERTH_BIN:-$ROOT/target/release/berth}
CLIENTLAB_VENV=${CLIENTLAB_VENV:-/opt/clientlab-venv}
export DEBIAN_FRONTEND=noninteractive
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo

say() { echo "[e2e] $*"; }
die() { echo "[e2e] $*" >&2; echo "e2e: 0 passed, 1 failed"; exit 1; }

[ -d "$CLIENTLAB" ] || die "clientlab not found at $CLIENTLAB (set CLIENTLAB=...)"
CLIENTLAB=$(cd "$CLIENTLAB" && pwd)

# --- what the run needs, installed only when missing ------------------------------------------
APT_PKGS=(chromium chromium-driver fonts-dejavu-core)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ! -x /usr/bin/chromium ] || [ ${#missing[@]} -gt 0 ]; then
  say "apt: installing ${missing[*]:-chromium}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PKGS[@]}" >/dev/null
fi
command -v node >/dev/null || die "node is missing (Node.js 20 or newer is needed)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || die "node $(node --version) is too old: playwright-core needs Node.js 20 or newer"
# npm ci when node_modules is missing or was installed from another package-lock.json.
STAMP=$E2E_DIR/node_modules/.berth-e2e-lock.json
if [ ! -d "$E2E_DIR/node_modules/playwright-core" ] || ! cmp -s "$E2E_DIR/package-lock.json" "$STAMP"; then
  say "npm ci (e2e/node_modules)"
  (cd "$E2E_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  cp "$E2E_DIR/package-lock.json" "$STAMP"
fi
if ! command -v skopeo >/dev/null || ! "$CLIENTLAB_VENV/bin/python" -c 'import oras, helm_python, cryptography, requests' 2>/dev/null; then
  bash "$CLIENTLAB/install.sh"
fi
if [ "${1:-}" = install ]; then
  say "installed"
  exit 0
fi
[ -x "$BERTH_BIN" ] || die "no berth binary at $BERTH_BIN (build it: cargo build --locked)"
say "$(/usr/bin/chromium --version 2>/dev/null | head -1), node $(node --version), playwright-core $(node -p 'require("'"$E2E_DIR"'/node_modules/playwright-core/package.json").version')"

# --- berth on a fresh data directory -------------------------------------------------------
OUT=$(mktemp -d /tmp/berth-e2e.XXXXXX)   # kept: logs and screenshots
DATA=$OUT/data                          # removed at exit
SCREENSHOT_DIR=$OUT/screenshots
mkdir -p "$SCREENSHOT_DIR"
BERTH_PID=
cleanup() {
  if [ -n "$BERTH_PID" ]; then kill "$BERTH_PID" 2>/dev/null || true; wait "$BERTH_PID" 2>/dev/null || true; fi
  rm -rf "$DATA"
}
trap cleanup EXIT

CONFIG=$OUT/config.yaml
# The Quay workshop snippet (encrypted layers allowed), plus the test's own OCI 1.1 artifact
# type; the configured map adds to berth's defaults, which allow the cosign referrer signature.
cat >"$CONFIG" <<'YAML'
ALLOWED_OCI_ARTIFACT_TYPES:
  application/vnd.oci.image.config.v1+json:
  - application/vnd.dev.cosign.simplesigning.v1+json
  - application/vnd.oci.image.layer.v1.tar+gzip+encrypted
  application/vnd.cncf.helm.config.v1+json:
  - application/tar+gzip
  application/vnd.berth.e2e.note.v1+json:
  - text/plain
YAML

LOG=$OUT/berth.log
NO_COLOR=1 BERTH_LOG=info "$BERTH_BIN" serve --listen 127.0.0.1:0 --data-dir "$DATA" --config "$CONFIG" >"$LOG" 2>&1 &
BERTH_PID=$!
BERTH_ADDR=
for _ in $(seq 1 600); do
  if grep -q 'berth ready on' "$LOG"; then
    BERTH_ADDR=$(grep -o 'berth ready on http://[0-9.:]*' "$LOG" | tail -1 | sed 's|.*://||')
    break
  fi
  kill -0 "$BERTH_PID" 2>/dev/null || { cat "$LOG"; BERTH_PID=; die "berth exited"; }
  sleep 0.1
done
[ -n "$BERTH_ADDR" ] || die "berth did not become ready (log: $LOG)"
ADMIN_PASS=$(cat "$DATA/initial-admin-password")
BERTH_URL=http://$BERTH_ADDR
say "berth at $BERTH_URL (log $LOG)"

api() { # METHOD PATH [JSON] -> body on stdout; fails on HTTP errors
  curl -sS --fail-with-body -u "admin:$ADMIN_PASS" -X "$1" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$BERTH_URL$2"
}
json_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

# --- accounts --------------------------------------------------------------------------------
VIEWER_PASS=viewer-$(openssl rand -hex 12)
READER_PASS=reader-$(openssl rand -hex 12)
api POST /api/v1/organization/ '{"name":"userorg"}' >/dev/null
api POST /api/v1/superuser/users/ "{\"username\":\"viewer\",\"password\":\"$VIEWER_PASS\",\"email\":\"viewer@example.com\"}" >/dev/null
api POST /api/v1/superuser/users/ "{\"username\":\"reader\",\"password\":\"$READER_PASS\",\"email\":\"reader@example.com\"}" >/dev/null
say "accounts: organization userorg, users viewer (no permissions) and reader"

# --- content, pushed as admin with real clients -------------------------------------------
ODD_TAG='_.-odd..TAG--0123456789abcdefghijklmnopqrstuvwxyz.v1_'
say "seeding (log $OUT/seed.log)"
if ! REGISTRY=$BERTH_ADDR REGISTRY_USER=admin REGISTRY_PASS=$ADMIN_PASS CLIENTLAB=$CLIENTLAB ODD_TAG=$ODD_TAG \
    bash "$E2E_DIR/seed.sh" >"$OUT/seed.log" 2>&1; then
  tail -40 "$OUT/seed.log"
  die "seeding failed (full log $OUT/seed.log, berth log $LOG)"
fi
tail -1 "$OUT/seed.log"
HOSTILE='<script>window.__pwned=1</script><img src=x onerror=window.__pwned=1>'
api POST /api/v1/repository/userorg/hostile/changevisibility '{"visibility":"public"}' >/dev/null
api PUT /api/v1/repository/userorg/hostile "{\"description\":$(json_str "$HOSTILE")}" >/dev/null
api PUT /api/v1/repository/userorg/httpd-24/permissions/user/reader '{"role":"read"}' >/dev/null
for r in httpd-24 helm/quarkus hostile kinds paged; do
  say "userorg/$r: $(curl -sS -u "admin:$ADMIN_PASS" "$BERTH_URL/v2/userorg/$r/tags/list" | head -c 300)"
done

# --- the browser tests -------------------------------------------------------------------
say "running the browser tests"
set +e
(cd "$E2E_DIR" && BERTH_URL=$BERTH_URL ADMIN_PASS=$ADMIN_PASS VIEWER_PASS=$VIEWER_PASS READER_PASS=$READER_PASS \
  ODD_TAG=$ODD_TAG SCREENSHOT_DIR=$SCREENSHOT_DIR \
  node --test --test-concurrency=1 --test-reporter=spec --test-reporter-destination=stdout \
    --test-reporter=tap --test-reporter-destination="$OUT/results.tap" ${E2E_TESTS:-dashboard.test.mjs})
rc=$?
set -e
say "screenshots in $SCREENSHOT_DIR"
say "logs in $OUT (berth.log, seed.log, results.tap)"
npass=$(grep -m1 -o '^# pass [0-9]*' "$OUT/results.tap" | grep -o '[0-9]*$' || echo 0)
nfail=$(grep -m1 -o '^# fail [0-9]*' "$OUT/results.tap" | grep -o '[0-9]*$' || echo 0)
ncancelled=$(grep -m1 -o '^# cancelled [0-9]*' "$OUT/results.tap" | grep -o '[0-9]*$' || echo 0)
nfail=$(( ${nfail:-0} + ${ncancelled:-0} ))   # a failed before() hook cancels every test
[ "$rc" -eq 0 ] || [ "${nfail:-0}" -gt 0 ] || nfail=1
echo "e2e: ${npass:-0} passed, ${nfail:-0} failed"
exit "$rc"
