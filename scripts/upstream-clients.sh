#!/usr/bin/env bash
# Proxy cache organizations and repository mirroring with the real clients (issue 20).
#   BERTH_BIN=target/debug/berth bash scripts/upstream-clients.sh
# Starts two upstreams on loopback, CNCF distribution (`docker-registry`) with htpasswd and a
# second berth with token auth, and pushes to each (skopeo, from OCI layouts the clientlab's
# make-image.py writes) an image (`library/app:1`), a multi-arch index (`1.1`), another image
# (`1.2`), tags outside the mirror rule (`2`, `latest`) and cosign 2 signatures of `1.1` and
# `1.2`; and to distribution only `1.3`, which only the mirror reads. Then starts the berth
# under test (SQLite + files, FEATURE_PROXY_CACHE and FEATURE_REPO_MIRROR) with a proxy cache
# organization on each upstream (and one with `expiration_s` 2) and checks:
# - skopeo copies through the cache give the digests and bytes of copies from the upstream
#   (image and index, every blob compared), crane and oras pull through it, cosign 2 verifies
#   the signature it finds through it;
# - a mirror of `library/app` with rule `1.*`, synced now (`sync_status` polled with a
#   deadline), lists exactly the matching tags and their signatures, serves byte-identical
#   manifests, and cosign 2 verifies the mirrored image with the key; a second sync copies no
#   blob (`berth_mirror_blobs_copied_total` at /metrics);
# - skopeo pushes into the mirror and into the proxy cache organization are refused;
# - with the distribution upstream stopped, a cached tag still pulls (long `expiration_s`) and
#   one past its `expiration_s` fails saying the upstream is unreachable and the copy stale;
# - no upstream password or berth password is in the log of the berth under test.
# Uses the clientlab's helpers (lib.sh) and clients; prints "flow U: ok" or "flow U: FAILED ...".
FLOW=U; CLIENTLAB=${CLIENTLAB:-$(cd "$(dirname "$0")/../../shared/clientlab" && pwd)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BERTH_BIN=${BERTH_BIN:-$ROOT/target/debug/berth}
# lib.sh checks REGISTRY is loopback; the berth under test gets its port below.
REGISTRY=127.0.0.1:0
source "$CLIENTLAB/lib.sh"
need skopeo crane oras cosign2 docker-registry htpasswd curl
[ -x "$BERTH_BIN" ] || fail "no berth binary at $BERTH_BIN (set BERTH_BIN)"
export COSIGN_PASSWORD= COSIGN_YES=true
HTTP=(--allow-http-registry)
cd "$WORK"
PIDS=()
on_exit 'for p in "${PIDS[@]}"; do kill "$p"; done; for p in "${PIDS[@]}"; do wait "$p"; done'

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
secret() { "$PY" -c 'import secrets; print(secrets.token_urlsafe(18))'; }
# wait_http URL: until it answers anything (30 s).
wait_http() {
  for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  fail "$1 did not answer within 30 s"
}

# start_berth NAME CONFIG-TEXT: berth on a free port with data in $WORK/NAME; sets ADDR and PID.
start_berth() {
  local dir=$WORK/$1
  mkdir -p "$dir"
  printf '%s' "$2" >"$dir.yaml"
  NO_COLOR=1 BERTH_LOG=info "$BERTH_BIN" serve --listen 127.0.0.1:0 --data-dir "$dir" --config "$dir.yaml" >"$dir.log" 2>&1 &
  PID=$!; PIDS+=("$PID")
  for _ in $(seq 1 600); do
    if grep -q 'berth ready on' "$dir.log"; then
      ADDR=$(grep -o 'berth ready on https\?://[0-9.:]*' "$dir.log" | tail -1 | sed 's|.*://||')
      return 0
    fi
    kill -0 "$PID" 2>/dev/null || fail "berth $1 exited: $(tail -5 "$dir.log")"
    sleep 0.1
  done
  fail "berth $1 did not become ready"
}

# api ADDR USER:PASS METHOD PATH [JSON]: the body on stdout, failing on an HTTP error.
api() {
  curl -sS --fail-with-body -u "$2" -X "$3" -H 'Content-Type: application/json' ${5:+--data "$5"} "http://$1$4"
}
json_field() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
digest_of() { sha256sum | sed 's/^/sha256:/; s/ .*//'; }
# raw REF: the manifest bytes skopeo reads (creds from the auth file).
raw() { "${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$1"; }

say "upstream 1: CNCF distribution with htpasswd"
DIST_PORT=$(free_port); DIST=127.0.0.1:$DIST_PORT
DIST_PASS=$(secret)
mkdir -p dist
htpasswd -Bbn puller "$DIST_PASS" >dist/htpasswd
cat >dist/config.yml <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/dist/storage
  delete:
    enabled: true
http:
  addr: $DIST
auth:
  htpasswd:
    realm: upstream
    path: $WORK/dist/htpasswd
YAML
# A clean environment: distribution reads REGISTRY_* variables (lib.sh's REGISTRY_AUTH_FILE)
# as configuration.
env -i PATH="$PATH" HOME="$HOME" docker-registry serve dist/config.yml >dist.log 2>&1 &
DIST_PID=$!; PIDS+=("$DIST_PID")
wait_http "http://$DIST/v2/"

say "upstream 2: berth with token auth, a user with read on library/app"
start_berth upberth 'FEATURE_GENERAL_OCI_SUPPORT: true
'
UPBERTH=$ADDR
UP_ADMIN="admin:$(cat "$WORK/upberth/initial-admin-password")"
UP_PASS=$(secret)
api "$UPBERTH" "$UP_ADMIN" POST /api/v1/organization/ '{"name":"library"}' >/dev/null || fail "create library on upstream berth"
api "$UPBERTH" "$UP_ADMIN" POST /api/v1/superuser/users/ "{\"username\":\"puller\",\"password\":\"$UP_PASS\"}" >/dev/null \
  || fail "create the puller on upstream berth"

say "the berth under test: SQLite + files, proxy cache and mirroring on"
start_berth berth 'FEATURE_GENERAL_OCI_SUPPORT: true
FEATURE_PROXY_CACHE: true
FEATURE_REPO_MIRROR: true
'
B=$ADDR
ADMIN_PASS=$(cat "$WORK/berth/initial-admin-password")
ADMIN="admin:$ADMIN_PASS"

login() { # ADDR USER PASS: skopeo (and so crane's config too), oras, cosign
  printf '%s' "$3" | "${SKOPEO[@]}" login --tls-verify=false -u "$2" --password-stdin "$1" >>login.log 2>&1 || fail "skopeo login $1"
  printf '%s' "$3" | crane auth login "$1" -u "$2" --password-stdin >>login.log 2>&1 || fail "crane auth login $1"
  printf '%s' "$3" | oras login --plain-http -u "$2" --password-stdin "$1" >>login.log 2>&1 || fail "oras login $1"
  printf '%s' "$3" | cosign2 login "$1" -u "$2" --password-stdin >>login.log 2>&1 || fail "cosign login $1"
}
login "$DIST" puller "$DIST_PASS"
login "$UPBERTH" admin "${UP_ADMIN#admin:}"
login "$B" admin "$ADMIN_PASS"

say "content: an image (1), an index (1.1), another image (1.2), tags 2 and latest, cosign signatures of 1.1 and 1.2"
cosign2 generate-key-pair >/dev/null 2>&1 || fail "cosign generate-key-pair"
"$PY" "$CLIENTLAB_DIR/make-image.py" img-1 --tag 1 --layers 2 >/dev/null
"$PY" "$CLIENTLAB_DIR/make-image.py" img-11 --tag 1.1 --platforms linux/amd64,linux/arm64 >/dev/null
"$PY" "$CLIENTLAB_DIR/make-image.py" img-12 --tag 1.2 --layers 3 >/dev/null
"$PY" "$CLIENTLAB_DIR/make-image.py" img-2 --tag 2 >/dev/null
for up in "$DIST" "$UPBERTH"; do
  for pair in 1:img-1:1 1.1:img-11:1.1 1.2:img-12:1.2 2:img-2:2 latest:img-2:2; do
    IFS=: read -r tag dir src <<<"$pair"
    "${SKOPEO[@]}" copy -q --all --dest-tls-verify=false "oci:$dir:$src" "docker://$up/library/app:$tag" >&2 \
      || fail "push library/app:$tag to $up"
  done
  for tag in 1.1 1.2; do
    d=$(raw "$up/library/app:$tag" | digest_of)
    cosign2 sign "${HTTP[@]}" --key cosign.key --tlog-upload=false "$up/library/app@$d" >>sign.log 2>&1 || fail "cosign2 sign $tag on $up"
  done
done
api "$UPBERTH" "$UP_ADMIN" PUT /api/v1/repository/library/app/permissions/user/puller '{"role":"read"}' >/dev/null \
  || fail "give the puller read on upstream berth's library/app"
# 1.3 only on distribution, pulled by nobody before the mirror syncs: its blobs must be copied.
"$PY" "$CLIENTLAB_DIR/make-image.py" img-13 --tag 1.3 --layers 2 >/dev/null
"${SKOPEO[@]}" copy -q --dest-tls-verify=false "oci:img-13:1.3" "docker://$DIST/library/app:1.3" >&2 || fail "push library/app:1.3"
D1=$(raw "$DIST/library/app:1" | digest_of)
D11=$(raw "$DIST/library/app:1.1" | digest_of)
D12=$(raw "$DIST/library/app:1.2" | digest_of)

say "proxy cache organizations: cache (distribution, Basic), cache2 (berth, token flow, namespace library), short (expiration_s 2)"
for org in cache cache2 short mirrors; do
  api "$B" "$ADMIN" POST /api/v1/organization/ "{\"name\":\"$org\"}" >/dev/null || fail "create organization $org"
done
api "$B" "$ADMIN" POST /api/v1/organization/cache/validateproxycache \
  "{\"upstream_registry\":\"$DIST\",\"insecure\":true,\"upstream_registry_username\":\"puller\",\"upstream_registry_password\":\"$DIST_PASS\"}" \
  >validate.json || fail "validate the distribution upstream: $(cat validate.json)"
api "$B" "$ADMIN" POST /api/v1/organization/cache/proxycache \
  "{\"upstream_registry\":\"$DIST\",\"insecure\":true,\"expiration_s\":86400,\"upstream_registry_username\":\"puller\",\"upstream_registry_password\":\"$DIST_PASS\"}" \
  >/dev/null || fail "configure cache"
api "$B" "$ADMIN" POST /api/v1/organization/cache2/proxycache \
  "{\"upstream_registry\":\"$UPBERTH/library\",\"insecure\":true,\"expiration_s\":86400,\"upstream_registry_username\":\"puller\",\"upstream_registry_password\":\"$UP_PASS\"}" \
  >/dev/null || fail "configure cache2"
api "$B" "$ADMIN" POST /api/v1/organization/short/proxycache \
  "{\"upstream_registry\":\"$DIST\",\"insecure\":true,\"expiration_s\":2,\"upstream_registry_username\":\"puller\",\"upstream_registry_password\":\"$DIST_PASS\"}" \
  >/dev/null || fail "configure short"

# copy_out REF DIR: skopeo copies REF (every platform) into the OCI layout DIR (emptied).
copy_out() {
  rm -rf "$2"
  "${SKOPEO[@]}" copy -q --all --src-tls-verify=false "docker://$1" "oci:$2:x" >copy.log 2>&1 || fail "skopeo copy $1: $(tail -3 copy.log)"
}
# same_layout A B: two such copies name the same manifest and hold the same blobs.
same_layout() {
  cmp -s "$1/index.json" "$2/index.json" || fail "$3: different manifests"
  diff -r "$1/blobs" "$2/blobs" >/dev/null || fail "$3: different blobs"
}
# same_copy A B: skopeo copies of both are identical (manifest digests and every blob), and
# so are the manifest bytes `skopeo inspect --raw` reads.
same_copy() {
  copy_out "$1" "$WORK/copy-a"
  copy_out "$2" "$WORK/copy-b"
  same_layout "$WORK/copy-a" "$WORK/copy-b" "skopeo copies of $1 and $2"
  [ "$(raw "$1" | digest_of)" = "$(raw "$2" | digest_of)" ] || fail "skopeo inspect --raw differs between $1 and $2"
  cmp -s <(raw "$1") <(raw "$2") || fail "the manifest bytes of $1 and $2 differ"
}
same_copy "$B/cache/library/app:1" "$DIST/library/app:1"
cp -r "$WORK/copy-b" "$WORK/direct-1"
same_copy "$B/cache/library/app:1.1" "$DIST/library/app:1.1"
same_copy "$B/cache/library/app@$D12" "$DIST/library/app@$D12"
same_copy "$B/cache2/app:1" "$UPBERTH/library/app:1"
same_copy "$B/cache2/app:1.1" "$UPBERTH/library/app:1.1"
say "skopeo: image, index (every platform) and by digest through both caches, identical to the upstreams"

[ "$(crane manifest --insecure "$B/cache/library/app:1.2" | digest_of)" = "$D12" ] || fail "crane manifest through the cache"
crane pull --insecure "$B/cache/library/app:1.2" crane.tar >crane.log 2>&1 || fail "crane pull through the cache: $(tail -3 crane.log)"
[ "$(crane digest --insecure "$B/cache2/app:1.2")" = "$(raw "$UPBERTH/library/app:1.2" | digest_of)" ] || fail "crane digest through cache2"
oras manifest fetch --plain-http "$B/cache/library/app:1" >oras-manifest.json 2>oras.log || fail "oras manifest fetch: $(tail -3 oras.log)"
[ "$(digest_of <oras-manifest.json)" = "$D1" ] || fail "oras fetched another manifest"
LAYER=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"])' oras-manifest.json)
oras blob fetch --plain-http --output layer.bin "$B/cache/library/app@$LAYER" >oras.log 2>&1 || fail "oras blob fetch: $(tail -3 oras.log)"
[ "$(digest_of <layer.bin)" = "$LAYER" ] || fail "oras fetched a layer with another digest"
say "crane and oras pull through the cache"

cosign2 verify "${HTTP[@]}" --key cosign.pub --insecure-ignore-tlog "$B/cache/library/app@$D12" >/dev/null 2>cosign.log \
  || fail "cosign verify through the cache: $(tail -3 cosign.log)"
cosign2 verify "${HTTP[@]}" --key cosign.pub --insecure-ignore-tlog "$B/cache2/app:1.1" >/dev/null 2>cosign.log \
  || fail "cosign verify of the index through cache2: $(tail -3 cosign.log)"
say "cosign 2 verifies signatures pulled through both caches"

say "mirror: mirrors/app of $DIST/library/app, rule 1.*"
api "$B" "$ADMIN" PUT /api/v1/organization/mirrors/robots/sync >/dev/null || fail "create the mirror robot"
api "$B" "$ADMIN" POST /api/v1/repository \
  '{"namespace":"mirrors","repository":"app","visibility":"private","description":"mirror"}' >/dev/null || fail "create mirrors/app"
M=/api/v1/repository/mirrors/app
api "$B" "$ADMIN" POST $M/mirror "{\"is_enabled\":true,\"external_reference\":\"$DIST/library/app\",\"sync_interval\":86400,
  \"sync_start_date\":\"2100-01-01T00:00:00Z\",\"root_rule\":{\"rule_kind\":\"tag_glob_csv\",\"rule_value\":[\"1.*\"]},
  \"robot_username\":\"mirrors+sync\",\"external_registry_username\":\"puller\",\"external_registry_password\":\"$DIST_PASS\",
  \"external_registry_config\":{\"verify_tls\":false}}" >mirror.json || fail "configure the mirror: $(cat mirror.json)"
api "$B" "$ADMIN" PUT $M/changerepostate '{"state":"MIRROR"}' >/dev/null || fail "change the state to MIRROR"
# metric NAME: the sum of a metric's samples at berth's /metrics (the superuser may read it).
metric() {
  api "$B" "$ADMIN" GET /metrics | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { print s + 0 }'
}
# sync_now: asks for a sync and polls sync_status until it ends (120 s at most).
sync_now() {
  local status=
  api "$B" "$ADMIN" POST $M/mirror/sync-now >/dev/null || fail "sync-now"
  for _ in $(seq 1 600); do
    status=$(api "$B" "$ADMIN" GET $M/mirror | json_field sync_status)
    case $status in SYNC_SUCCESS|SYNC_FAILED) break ;; esac
    sleep 0.2
  done
  [ "$status" = SYNC_SUCCESS ] || fail "the mirror sync ended $status (within 120 s)"
}
sync_now
COPIED=$(metric berth_mirror_blobs_copied_total)
# At least 1.3's config and two layers, which berth had never stored.
[ "$COPIED" -ge 3 ] || fail "the first sync copied $COPIED blobs (berth_mirror_blobs_copied_total), not 1.3's"
"${SKOPEO[@]}" list-tags --tls-verify=false "docker://$B/mirrors/app" >tags.json || fail "skopeo list-tags of the mirror"
want=$("$PY" -c 'import sys; print(" ".join(sorted(sys.argv[1:])))' 1.1 1.2 1.3 "sha256-${D11#sha256:}.sig" "sha256-${D12#sha256:}.sig")
got=$("$PY" -c 'import json,sys; print(" ".join(sorted(json.load(open(sys.argv[1]))["Tags"])))' tags.json)
[ "$got" = "$want" ] || fail "the mirror lists '$got', expected '$want'"
for tag in 1.1 1.2 1.3 "sha256-${D11#sha256:}.sig" "sha256-${D12#sha256:}.sig"; do
  cmp -s <(raw "$B/mirrors/app:$tag") <(raw "$DIST/library/app:$tag") || fail "the mirror's $tag is not byte-identical to the upstream's"
done
same_copy "$B/mirrors/app:1.1" "$DIST/library/app:1.1"
cosign2 verify "${HTTP[@]}" --key cosign.pub --insecure-ignore-tlog "$B/mirrors/app:1.2" >/dev/null 2>cosign.log \
  || fail "cosign verify of the mirrored image: $(tail -3 cosign.log)"
sync_now
[ "$(metric berth_mirror_blobs_copied_total)" = "$COPIED" ] || fail "the second sync copied blobs again"
say "mirror: SYNC_SUCCESS, tags '$got', byte-identical, cosign verifies; a second sync copies no blob ($COPIED in the first)"

# refused_push REPO: a skopeo push there must fail as denied.
refused_push() {
  if "${SKOPEO[@]}" copy -q --dest-tls-verify=false "oci:img-2:2" "docker://$B/$1:pushed" >push.log 2>&1; then
    fail "skopeo pushed into $1"
  fi
  grep -qi 'denied\|403\|forbidden\|unauthorized' push.log || fail "the push into $1 failed otherwise: $(tail -2 push.log)"
}
refused_push mirrors/app
refused_push cache/library/app
refused_push cache/library/new
say "pushes into the mirror and the proxy cache organization are refused"

say "the distribution upstream stops"
"${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$B/short/library/app:1" >/dev/null || fail "pull through short"
kill "$DIST_PID"; wait "$DIST_PID" 2>/dev/null || true
if curl -s -o /dev/null "http://$DIST/v2/"; then fail "distribution still answers"; fi
copy_out "$B/cache/library/app:1" "$WORK/cached-1"
same_layout "$WORK/cached-1" "$WORK/direct-1" "the cached tag with the upstream down and the upstream's copy"
[ "$(raw "$B/cache/library/app:1" | digest_of)" = "$D1" ] || fail "the cached tag changed with the upstream down"
# Not a wait for something to happen: short's tag must be older than its expiration_s (2 s),
# so berth has to revalidate it, which cannot succeed.
sleep 2.5
if timeout 60 "${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$B/short/library/app:1" >short.out 2>short.log; then
  fail "a tag past expiration_s pulled with the upstream down"
fi
grep -qi 'unreachable\|stale' short.log || fail "no clear error for a tag past expiration_s with the upstream down: $(tail -1 short.log)"
say "cached tags pull with the upstream down; past expiration_s: $(tail -1 short.log | cut -c1-160)"

leaked=
for s in "$DIST_PASS" "$UP_PASS" "$ADMIN_PASS"; do
  grep -qF -- "$s" "$WORK/berth.log" && leaked=yes
done
[ -z "$leaked" ] || fail "a password is in the log of the berth under test"
ok
