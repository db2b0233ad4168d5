#!/usr/bin/env bash
# The one command that runs every berth test on a fresh machine:
#   1. installs what the tests need, only what is missing (Rust components; in the background
#      while the code builds: the clientlab's real clients, PostgreSQL, CNCF distribution,
#      Chromium and playwright-core; Garage from crates.io while the first tests run),
#   2. builds the workspace once (the debug profile, dependencies optimized) and lints it,
#   3. runs the unit and integration tests with cargo-nextest, once on the embedded SQLite +
#      files and once on PostgreSQL + Garage (S3), both servers started here
#      (scripts/postgres.sh, garage.sh), the reliability harness's short modes on both
#      (berth-torture: kill -9 crash cycles, a 200-client soak), the benchmark harness's quick
#      mode against CNCF distribution (embedded, and two berth replicas on PostgreSQL + Garage),
#      and the scale-out tests on a three-node Garage,
#   4. starts berth on a free loopback port and drives it with the real clients of
#      ../shared/clientlab (skopeo, podman, buildah, umoci, Helm SDK, oras, cosign, notation,
#      crane), also through proxy caches and mirrors of real upstreams,
#   5. runs the web dashboard's end-to-end tests in headless Chromium (e2e/run.sh: its own
#      berth, seeded with the real clients).
# The harnesses, the clients and the browser tests use the same build as the tests
# (target/debug): one compilation serves the whole run.
# Prints "N passed, N failed" lines for the clientlab flows, the browser tests and in total;
# exits non-zero on failure. Each step's heading shows the time since the start.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CLIENTLAB=${CLIENTLAB:-$ROOT/../shared/clientlab}
FLOWS=${FLOWS:-"a b c d e f g h j k l m"}
# The real-client stage's modes (each on registries of its own, side by side): the clientlab
# flows as admin with berth's defaults, as a user, a robot and anonymously; signing and trust
# (scripts/trust-clients.sh); proxy caches and mirroring (scripts/upstream-clients.sh).
MODES=${MODES:-"defaults user robot anonymous trust upstream"}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
BIN=$ROOT/target/debug
# A fresh build gains nothing from incremental state, which would take gigabytes of disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
export BERTH_BIN=${BERTH_BIN:-$BIN/berth}
LOGS=$(mktemp -d /tmp/berth-ci.XXXXXX)

step() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

# STAGES=clients runs only the real-client part and the browser tests against an existing
# build (MODES picks its modes, e.g. MODES=upstream), STAGES=e2e only the browser tests (for
# iterating on them); everything else runs by default.
STAGES=${STAGES:-all}
case $STAGES in
  all|clients|e2e) ;;
  *) echo "STAGES must be all, clients or e2e (got '$STAGES')" >&2; exit 2 ;;
esac
[ -d "$CLIENTLAB" ] || { echo "clientlab not found at $CLIENTLAB (set CLIENTLAB=...)" >&2; exit 1; }

# What the later steps need from apt, PyPI and npm: network-bound, so it runs while the code
# compiles. apt takes one lock, so these run one after another.
install_prerequisites() {
  set -e
  bash "$CLIENTLAB/install.sh"
  local pkgs=()
  command -v docker-registry >/dev/null || pkgs+=(docker-registry)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || pkgs+=(postgresql)
  command -v promtool >/dev/null && command -v prometheus >/dev/null || pkgs+=(prometheus)
  if [ ${#pkgs[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${pkgs[@]}" >/dev/null; }
  fi
  CLIENTLAB=$CLIENTLAB bash "$ROOT/e2e/run.sh" install
}
install_prerequisites >"$LOGS/install.log" 2>&1 &
INSTALL_PID=$!
installed=
wait_for_prerequisites() {
  [ -z "$installed" ] || return 0
  if ! wait "$INSTALL_PID"; then
    cat "$LOGS/install.log"; echo "installing the test prerequisites failed" >&2; exit 1
  fi
  installed=yes
}

passed=0; failed=0; failed_names=()
if [ "$STAGES" = all ]; then
step "toolchain"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy
cargo --version
cargo nextest --version | head -1

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "supply chain: licences, bans, sources and advisories (cargo deny)"
bash scripts/supply-chain.sh

step "build: the workspace, its tests and its binaries, once"
cargo build --locked --workspace --all-targets

step "unit and integration tests on SQLite + files"
# Garage (for the PostgreSQL + S3 pass) builds from crates.io on a new machine; the tests are
# mostly waiting on I/O, so it builds beside them at a lower priority.
nice -n 10 bash scripts/garage.sh install >"$LOGS/garage-install.log" 2>&1 &
GARAGE_INSTALL_PID=$!
garage_installed=
wait_for_garage() {
  [ -z "$garage_installed" ] || return 0
  if ! wait "$GARAGE_INSTALL_PID"; then
    cat "$LOGS/garage-install.log"; echo "installing Garage failed" >&2; exit 1
  fi
  garage_installed=yes
}
# The metrics tests run promtool and a Prometheus server (the `prometheus` package).
wait_for_prerequisites
BERTH_REQUIRE_PROMETHEUS=1 cargo nextest run --locked --workspace --all-targets --profile ci

step "reliability on SQLite + files: crash cycles and a soak (short modes of berth-torture)"
# The long runs (200 cycles, 10 minutes) are in the README's reliability section.
"$BIN/berth-torture" crash --cycles "${CRASH_CYCLES:-10}"
"$BIN/berth-torture" soak --duration "${SOAK_DURATION:-30s}" --clients 200

step "benchmark harness, quick mode: embedded, and scale-out (two berth replicas on PostgreSQL + Garage), side by side"
# Checks that every scenario runs without errors, not speed (and this is not an optimized
# build); the full runs write BENCHMARKS.md (see the README's Performance section). The
# scale-out run starts its own PostgreSQL and Garage (scripts/postgres.sh, garage.sh, state in
# its work directory); it runs beside the embedded one, whose numbers it skews, to keep the
# step short.
wait_for_prerequisites
wait_for_garage
BENCH_DIR=$(mktemp -d /tmp/berth-bench.XXXXXX)
# The scale-out run's PostgreSQL runs as the postgres user, which must reach its work directory.
chmod 711 "$BENCH_DIR"
"$BIN/berth-bench" compare --backend scale-out --quick --repeats 1 --out "$BENCH_DIR/scale-out/BENCHMARKS.md" \
  --work-dir "$BENCH_DIR/scale-out-work" >"$BENCH_DIR/scale-out.log" 2>&1 &
SCALE_OUT_PID=$!
"$BIN/berth-bench" compare --quick --repeats 1 --out "$BENCH_DIR/BENCHMARKS.md" --work-dir "$BENCH_DIR/work" \
  || { kill "$SCALE_OUT_PID"; wait "$SCALE_OUT_PID" || true; cat "$BENCH_DIR/scale-out.log"; exit 1; }
echo "-- scale-out (started at the same time)"
if ! wait "$SCALE_OUT_PID"; then
  cat "$BENCH_DIR/scale-out.log"; echo "the scale-out benchmark failed" >&2; exit 1
fi
cat "$BENCH_DIR/scale-out.log"
# Signature verification beside pushes (berth-bench trust), its smoke mode: 50 signed images.
"$BIN/berth-bench" trust --quick --repeats 1 --out "$BENCH_DIR/trust.md" --work-dir "$BENCH_DIR/trust-work"
# Pulls through a proxy cache (berth-bench proxy), its smoke mode: an 8 MiB image, one round.
"$BIN/berth-bench" proxy --quick --repeats 1 --out "$BENCH_DIR/proxy.md" --work-dir "$BENCH_DIR/proxy-work"
rm -rf "$BENCH_DIR"

step "integration tests on PostgreSQL + Garage (S3)"
# The scale-out backend pair: every test server gets its own PostgreSQL database and its own
# prefix in one Garage bucket.
wait_for_garage
export BERTH_PG_STATE=/tmp/berth-postgres.$$ BERTH_GARAGE_STATE=/tmp/berth-garage.$$
trap 'bash scripts/postgres.sh stop; bash scripts/garage.sh stop' EXIT
PG_URI=$(bash scripts/postgres.sh start)
bash scripts/garage.sh start >/dev/null
set -a; . "$BERTH_GARAGE_STATE/env"; set +a
# --workspace as in the build above: without it cargo resolves features for this package
# alone and rebuilds every test binary (six minutes here).
BERTH_REQUIRE_PROMETHEUS=1 BERTH_TEST_DB_URI=$PG_URI cargo nextest run --locked --workspace --tests --profile ci -E 'package(berth)'
step "reliability on PostgreSQL + Garage: crash cycles"
TORTURE_DIR=$(mktemp -d /tmp/berth-torture.XXXXXX)
psql "$PG_URI" -qc "CREATE DATABASE torture"
cat >"$TORTURE_DIR/config.yaml" <<YAML
DB_URI: "${PG_URI%/*}/torture"
DISTRIBUTED_STORAGE_CONFIG:
  default:
  - S3Storage
  - endpoint_url: "$BERTH_TEST_S3_ENDPOINT"
    s3_bucket: "$BERTH_TEST_S3_BUCKET"
    s3_access_key: "$BERTH_TEST_S3_ACCESS_KEY"
    s3_secret_key: "$BERTH_TEST_S3_SECRET_KEY"
    s3_region: "$BERTH_TEST_S3_REGION"
    storage_path: /torture
DISTRIBUTED_STORAGE_PREFERENCE: [default]
FEATURE_PROXY_STORAGE: true
YAML
"$BIN/berth-torture" crash --cycles "${CRASH_CYCLES_S3:-5}" --config "$TORTURE_DIR/config.yaml" --work-dir "$TORTURE_DIR/work"
rm -rf "$TORTURE_DIR"
bash scripts/garage.sh stop

step "scale-out: replicas, GC races and the storage contract on a three-node Garage (replication factor 3)"
GARAGE_NODES=3 bash scripts/garage.sh start >/dev/null
set -a; . "$BERTH_GARAGE_STATE/env"; set +a
BERTH_TEST_DB_URI=$PG_URI cargo nextest run --locked --workspace --profile ci --test integration \
  -E 'test(/^(replicas|gc_race|s3_storage|storage_conformance)::/)'
unset BERTH_TEST_S3_ENDPOINT BERTH_TEST_S3_BUCKET BERTH_TEST_S3_ACCESS_KEY BERTH_TEST_S3_SECRET_KEY BERTH_TEST_S3_REGION
bash scripts/postgres.sh stop
bash scripts/garage.sh stop
trap - EXIT

fi

if [ "$STAGES" != e2e ]; then
step "real clients (clientlab): flows A to M as a user, as a robot and anonymously"
wait_for_prerequisites

WORK=$(mktemp -d /tmp/berth-test.XXXXXX)
BERTH_PIDS=()
cleanup() {
  for pid in "${BERTH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Starts berth on an ephemeral port with data in $1 and config $2 (plus any extra arguments);
# sets BERTH_ADDR from its ready line and BERTH_PID.
start_berth() {
  local data=$1 config=$2; shift 2
  local log=$data.log
  NO_COLOR=1 BERTH_LOG=info "$BERTH_BIN" serve --listen 127.0.0.1:0 --data-dir "$data" --config "$config" "$@" >"$log" 2>&1 &
  BERTH_PID=$!
  BERTH_PIDS+=("$BERTH_PID")
  for _ in $(seq 1 600); do
    if grep -q 'berth ready on' "$log"; then
      BERTH_ADDR=$(grep -o 'berth ready on https\?://[0-9.:]*' "$log" | tail -1 | sed 's|.*://||')
      return 0
    fi
    kill -0 "$BERTH_PID" 2>/dev/null || { cat "$log"; echo "berth exited" >&2; return 1; }
    sleep 0.1
  done
  echo "berth did not become ready" >&2
  return 1
}

# Quay's documented artifact-type snippet (the seed's), verbatim: in berth as in Quay it adds
# to the built-in types, so cosign 3 bundles, attestations, SBOMs and Notary signatures stay.
SNIPPET='FEATURE_GENERAL_OCI_SUPPORT: true
ALLOWED_OCI_ARTIFACT_TYPES:
  application/vnd.oci.image.config.v1+json:
  - application/vnd.dev.cosign.simplesigning.v1+json
  - application/vnd.oci.image.layer.v1.tar+gzip+encrypted
  application/vnd.cncf.helm.config.v1+json:
  - application/tar+gzip
'
export H_REQUIRE_REFERRERS_API=1 J_REQUIRE_REFERRERS_API=1 F_REQUIRE_REFERRERS_API=1

# Each mode writes "ok: ..." and "FAILED: ..." lines to its own results file: modes on
# separate registries run at once.
pass() { echo "ok: $*" | tee -a "$RESULTS"; }
flunk() { echo "FAILED: $*" | tee -a "$RESULTS"; }
api() { # METHOD PATH [JSON] -> body on stdout; fails on HTTP errors
  curl -sS --fail-with-body -u "admin:$ADMIN_PASS" -X "$1" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "http://$BERTH_ADDR$2"
}

# Runs one clientlab flow in mode $1 ("user", "robot" or "anonymous") as $4:$5 (none when
# empty); $3 is "pass" or "refused" (must fail at push, naming the encrypted layer type).
run_flow() {
  local mode=$1 flow=$2 expect=$3 user=${4:-} secret=${5:-} log=$WORK/flow-$1-$2-$3.log
  if REGISTRY=$BERTH_ADDR REGISTRY_USER=$user REGISTRY_PASS=$secret FLOW_TIMEOUT=600 \
      timeout 600 bash "$CLIENTLAB/$flow.sh" >"$log" 2>&1; then
    if [ "$expect" = pass ]; then pass "flow $flow ($mode)"; else tail -5 "$log"; flunk "flow $flow ($mode) was accepted but must be refused"; fi
  else
    if [ "$expect" = refused ] && grep -q 'manifest invalid: layer media type application/vnd.oci.image.layer.v1.tar+gzip+encrypted is not allowed' "$log"; then
      pass "flow $flow ($mode) refused with MANIFEST_INVALID naming the encrypted layer type"
    else
      tail -20 "$log"; flunk "flow $flow ($mode, expected $expect)"
    fi
  fi
}

# Records "ok" when none of the secrets given (passwords and tokens the mode's clients sent,
# and the Basic credentials made of them) appears in the berth logs named by the rest of the
# arguments, "FAILED" naming the log otherwise. Usage: check_no_secret_logged SECRETS... -- LOGS...
check_no_secret_logged() {
  local secrets=() logs=() leaked=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do secrets+=("$1"); shift; done
  shift; logs=("$@")
  local s
  for s in "${secrets[@]}"; do
    [ ${#s} -ge 8 ] || continue
    for log in "${logs[@]}"; do
      if grep -qF -- "$s" "$log"; then leaked+=("$(basename "$log")"); fi
    done
  done
  if [ ${#leaked[@]} -eq 0 ]; then
    pass "no password or token in berth's log (${#secrets[@]} secrets, ${#logs[@]} logs)"
  else
    flunk "a password or token appears in berth's log: ${leaked[*]}"
  fi
}

# A secret and the Basic credentials `user:secret` it travels in.
basic_of() { printf '%s:%s' "$1" "$2" | base64 -w0; }

# The seed's tenancy: organization userorg, with a team of the creator role.
setup_userorg() {
  api POST /api/v1/organization/ '{"name":"userorg"}' >/dev/null
  api PUT /api/v1/organization/userorg/team/pushers '{"role":"creator"}' >/dev/null
}

# Mode "user": a user who is no superuser, in userorg's creator team, through the token flow.
mode_user() {
  RESULTS=$WORK/results-user; local data=$WORK/user config=$WORK/user.yaml
  printf '%s' "$SNIPPET" >"$config"
  start_berth "$data" "$config"
  ADMIN_PASS=$(cat "$data/initial-admin-password")
  setup_userorg
  local password=flows-$RANDOM-$RANDOM
  api POST /api/v1/superuser/users/ "{\"username\":\"alice\",\"password\":\"$password\"}" >/dev/null
  api PUT /api/v1/organization/userorg/team/pushers/members/alice >/dev/null
  for flow in $FLOWS; do run_flow user "$flow" pass alice "$password"; done
  check_no_secret_logged "$ADMIN_PASS" "$password" "$(basic_of admin "$ADMIN_PASS")" \
    "$(basic_of alice "$password")" -- "$data.log"
}

# Mode "robot": a robot whose only right is userorg's creator team.
mode_robot() {
  RESULTS=$WORK/results-robot; local data=$WORK/robot config=$WORK/robot.yaml
  printf '%s' "$SNIPPET" >"$config"
  start_berth "$data" "$config"
  ADMIN_PASS=$(cat "$data/initial-admin-password")
  setup_userorg
  local token
  token=$(api PUT /api/v1/organization/userorg/robots/ci | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  api PUT /api/v1/organization/userorg/team/pushers/members/userorg+ci >/dev/null
  for flow in $FLOWS; do run_flow robot "$flow" pass userorg+ci "$token"; done
  check_no_secret_logged "$ADMIN_PASS" "$token" "$(basic_of admin "$ADMIN_PASS")" \
    "$(basic_of userorg+ci "$token")" -- "$data.log"
}

# Mode "anonymous": AUTHENTICATION_TYPE: None, no credentials at all.
mode_anonymous() {
  RESULTS=$WORK/results-anonymous; local data=$WORK/anonymous config=$WORK/anonymous.yaml
  printf 'AUTHENTICATION_TYPE: None\n%s' "$SNIPPET" >"$config"
  start_berth "$data" "$config"
  for flow in $FLOWS; do run_flow anonymous "$flow" pass; done
}

# Mode "defaults": berth's own policy (encrypted images refused), the snippet appended to the
# running server's config (applied without a restart), anonymous pulls, HTTPS login.
mode_defaults() {
  RESULTS=$WORK/results-defaults; local data=$WORK/defaults config=$WORK/defaults.yaml
  # A Quay config carries keys berth does not use: they must only warn.
  printf 'BROWSER_API_CALLS_XHR_ONLY: false\nFEATURE_ACI_CONVERSION: false\n' >"$config"
  start_berth "$data" "$config"
  ADMIN_PASS=$(cat "$data/initial-admin-password")
  echo "berth at $BERTH_ADDR (config $config; first-start admin password in the data directory)"
  setup_userorg
  for flow in $FLOWS; do
    case $flow in
      c|d) run_flow defaults "$flow" refused admin "$ADMIN_PASS" ;;
      *) run_flow defaults "$flow" pass admin "$ADMIN_PASS" ;;
    esac
  done
  # Anonymous pulls: public repositories only.
  local skopeo=(skopeo --policy "$WORK/policy.json")
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$WORK/policy.json"
  api POST /api/v1/repository/userorg/app/changevisibility '{"visibility":"public"}' >/dev/null
  if "${skopeo[@]}" inspect --raw --tls-verify=false --no-creds "docker://$BERTH_ADDR/userorg/app:1" >/dev/null 2>"$WORK/anon.log"; then
    pass "anonymous pull of a public repository"
  else
    cat "$WORK/anon.log"; flunk "anonymous pull of a public repository"
  fi
  if "${skopeo[@]}" inspect --raw --tls-verify=false --no-creds "docker://$BERTH_ADDR/userorg/signed:1" >/dev/null 2>"$WORK/anon2.log"; then
    flunk "anonymous pull of a private repository succeeded"
  else
    grep -qi 'unauthorized\|authentication required' "$WORK/anon2.log" && pass "anonymous pull of a private repository refused" \
      || { cat "$WORK/anon2.log"; flunk "unexpected error for an anonymous private pull"; }
  fi
  # Append the snippet to the running berth's config: no restart.
  printf '%s' "$SNIPPET" | grep -v '^FEATURE_GENERAL_OCI_SUPPORT' >>"$config"
  local reloaded=no
  for _ in $(seq 1 50); do
    if [ "$(grep -c 'config reloaded' "$data.log")" -ge 1 ]; then reloaded=yes; break; fi
    sleep 0.1
  done
  if [ $reloaded = yes ]; then pass "config change applied within 5 s"; else flunk "config change not applied within 5 s"; fi
  for flow in $FLOWS; do
    case $flow in
      c|d) run_flow defaults+snippet "$flow" pass admin "$ADMIN_PASS" ;;
    esac
  done
  # Login over HTTPS with skopeo, trusting berth's self-signed certificate as a CA.
  kill "$BERTH_PID"; wait "$BERTH_PID" 2>/dev/null || true
  cp "$data.log" "$data.plain.log"
  start_berth "$data" "$config" --tls-self-signed
  mkdir -p "$WORK/certs" && cp "$data/tls/cert.pem" "$WORK/certs/ca.crt"
  if skopeo login --cert-dir "$WORK/certs" --authfile "$WORK/tls-auth.json" -u admin -p "$ADMIN_PASS" "$BERTH_ADDR" >"$WORK/tls.log" 2>&1; then
    pass "skopeo login over HTTPS with --cert-dir"
  else
    cat "$WORK/tls.log"; flunk "skopeo login over HTTPS"
  fi
  check_no_secret_logged "$ADMIN_PASS" "$(basic_of admin "$ADMIN_PASS")" -- "$data.plain.log" "$data.log"
}

# Mode "trust": signing and trust with cosign 2, cosign 3 and notation (scripts/trust-clients.sh)
# against two replicas on their own PostgreSQL and Garage, so every pull and status is checked on
# both.
mode_trust() {
  RESULTS=$WORK/results-trust
  local state=$WORK/trust-servers config=$WORK/trust.yaml uri a b
  mkdir -p "$state"
  # PostgreSQL runs as the postgres user, which must reach its state directory.
  chmod 711 "$WORK" "$state"
  export BERTH_PG_STATE=$state/pg BERTH_GARAGE_STATE=$state/garage
  bash scripts/garage.sh install >/dev/null
  if uri=$(bash scripts/postgres.sh start) && bash scripts/garage.sh start >/dev/null; then
    (
      set -a; . "$BERTH_GARAGE_STATE/env"; set +a
      cat >"$config" <<YAML
DB_URI: "$uri"
DISTRIBUTED_STORAGE_CONFIG:
  default:
  - S3Storage
  - endpoint_url: "$BERTH_TEST_S3_ENDPOINT"
    s3_bucket: "$BERTH_TEST_S3_BUCKET"
    s3_access_key: "$BERTH_TEST_S3_ACCESS_KEY"
    s3_secret_key: "$BERTH_TEST_S3_SECRET_KEY"
    s3_region: "$BERTH_TEST_S3_REGION"
    storage_path: /trust
DISTRIBUTED_STORAGE_PREFERENCE: [default]
YAML
    )
    start_berth "$WORK/trust-a" "$config"; a=$BERTH_ADDR
    start_berth "$WORK/trust-b" "$config"; b=$BERTH_ADDR
    local password log=$WORK/flow-trust.log
    password=$(cat "$WORK/trust-a/initial-admin-password")
    if REGISTRY=$a REGISTRY2=$b REGISTRY_USER=admin REGISTRY_PASS=$password CLIENTLAB=$CLIENTLAB \
        timeout 900 bash scripts/trust-clients.sh >"$log" 2>&1; then
      pass "flow t (trust: cosign 2, cosign 3 and notation signatures verified, policy enforced with skopeo and podman, on two replicas)"
    else
      tail -30 "$log"; flunk "flow t (trust)"
    fi
    check_no_secret_logged "$password" "$(basic_of admin "$password")" -- "$WORK/trust-a.log" "$WORK/trust-b.log"
  else
    flunk "flow t (trust): PostgreSQL or Garage did not start"
  fi
  for pid in "${BERTH_PIDS[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  bash scripts/postgres.sh stop >/dev/null 2>&1 || true
  bash scripts/garage.sh stop >/dev/null 2>&1 || true
}

# Mode "upstream": proxy cache organizations and repository mirroring with skopeo, crane, oras
# and cosign 2 (scripts/upstream-clients.sh), which starts its own upstreams (CNCF distribution
# with htpasswd, a second berth with token auth) and its own berth on SQLite + files.
mode_upstream() {
  RESULTS=$WORK/results-upstream
  local log=$WORK/flow-upstream.log
  if BERTH_BIN=$BERTH_BIN CLIENTLAB=$CLIENTLAB timeout 600 bash scripts/upstream-clients.sh >"$log" 2>&1; then
    pass "flow u (upstream: pulls through proxy caches of distribution and berth identical to the upstreams with skopeo, crane, oras and cosign 2; cached tags with the upstream down; a mirror synced with exactly its tags, byte-identical, signatures verified; pushes refused)"
  else
    tail -30 "$log"; flunk "flow u (upstream)"
  fi
}

# The modes use separate registries (and the flows their own temporary directories), so they
# run side by side; each mode's flows run one after another, back to back.
mode_pids=()
for mode in $MODES; do
  ( set +e; "mode_$mode"; for pid in "${BERTH_PIDS[@]}"; do kill "$pid" 2>/dev/null; done ) >"$WORK/mode-$mode.log" 2>&1 &
  mode_pids+=($!)
done
for pid in "${mode_pids[@]}"; do wait "$pid" || true; done
for mode in $MODES; do
  echo "-- mode $mode"; cat "$WORK/mode-$mode.log"
  touch "$WORK/results-$mode"
  passed=$((passed + $(grep -c '^ok: ' "$WORK/results-$mode")))
  mode_failed=$(grep -c '^FAILED: ' "$WORK/results-$mode" || true)
  failed=$((failed + mode_failed))
  [ "$mode_failed" -eq 0 ] || failed_names+=("$mode")
  # Every flow must have reported, in every mode.
  expected=$(echo $FLOWS | wc -w); case $mode in trust|upstream) expected=1 ;; esac
  reported=$(grep -c '^\(ok\|FAILED\): flow [a-z] (' "$WORK/results-$mode" || true)
  if [ "$reported" -lt "$expected" ]; then failed=$((failed + 1)); failed_names+=("$mode-incomplete"); fi
done
echo "clientlab: $passed passed, $failed failed${failed_names:+ (${failed_names[*]})}"
fi

step "dashboard end-to-end (Chromium)"
wait_for_prerequisites
E2E_LOG=$(mktemp /tmp/berth-e2e-log.XXXXXX)
set +e
CLIENTLAB=$CLIENTLAB bash "$ROOT/e2e/run.sh" 2>&1 | tee "$E2E_LOG"
e2e_rc=${PIPESTATUS[0]}
set -e
e2e_counts=$(grep -E '^e2e: [0-9]+ passed, [0-9]+ failed$' "$E2E_LOG" | tail -1 || true)
rm -f "$E2E_LOG"
e2e_passed=$(echo "$e2e_counts" | sed -nE 's/^e2e: ([0-9]+) passed.*/\1/p')
e2e_failed=$(echo "$e2e_counts" | sed -nE 's/.* ([0-9]+) failed$/\1/p')
[ "$e2e_rc" -eq 0 ] || [ "${e2e_failed:-0}" -gt 0 ] || e2e_failed=1

rm -rf "$LOGS"
echo "total: $((passed + ${e2e_passed:-0})) passed, $((failed + ${e2e_failed:-0})) failed"
[ "$failed" -eq 0 ] && [ "$e2e_rc" -eq 0 ]
