#!/usr/bin/env bash
# Seeds a running berth with what the dashboard tests look at, pushed with real clients
# (the clientlab's skopeo setup, Helm's Go SDK, its cosign-format signer and its OCI client):
#   userorg/helm/quarkus:0.0.3   Helm chart, pushed by Helm's SDK (clientlab flow E, helm-sdk part)
#   userorg/httpd-24:1-30        image (make-image.py + skopeo), signed twice: cosign tag
#                                sha256-<hex>.sig and an OCI 1.1 referrer (cosign_lab.py)
#   userorg/httpd-24:encrypted   the same image encrypted with JWE (skopeo + ocicrypt, openssl key)
#   userorg/httpd-24:to-delete   another image, only there for the delete test to remove
#   userorg/hostile:*            script in annotations, a Helm chart with a hostile description,
#                                an OCI artifact and an odd (legal) tag: seed_artifacts.py
#   userorg/kinds:multi, :zstd   a 2-platform OCI index (skopeo --all) and a zstd image
#   userorg/paged:p-000..p-129   many tags pointing at one manifest, for the pager
# Env: REGISTRY (host:port), REGISTRY_USER, REGISTRY_PASS (an account that may create
# repositories in userorg), CLIENTLAB (default ../shared/clientlab beside the repository),
# ODD_TAG. Needs the berth config to allow encrypted layers and the artifact types that
# run.sh writes. Prints "flow seed: ok" last on success.
set -Eeuo pipefail
E2E_DIR=$(cd "$(dirname "$0")" && pwd)
CLIENTLAB=${CLIENTLAB:-$E2E_DIR/../../shared/clientlab}
CLIENTLAB=$(cd "$CLIENTLAB" && pwd)
export NAMESPACE=userorg
ODD_TAG=${ODD_TAG:?set ODD_TAG}

# 1. The Helm chart, with Helm's own SDK: e.py pushes to oci://$REGISTRY/$NAMESPACE, so this
#    lands in userorg/helm/quarkus:0.0.3. Run before lib.sh is sourced (it has its own).
echo "[seed] Helm chart quarkus 0.0.3 -> userorg/helm/quarkus (clientlab flow E, helm-sdk)" >&2
NAMESPACE=userorg/helm E_CLIENTS=helm-sdk bash "$CLIENTLAB/e.sh" >&2

# lib.sh: private HOME, auth file, policy.json, registries.conf, $WORK, $PY, skopeo wrappers.
FLOW=seed
# shellcheck source=/dev/null
source "$CLIENTLAB/lib.sh"
need skopeo openssl
registry_login
R=$(repo httpd-24)

# 2. The image, its cosign signature (tag scheme) and an OCI 1.1 referrer signature.
say "image -> $R:1-30"
"$PY" "$CLIENTLAB/make-image.py" "$WORK/src" --tag 1-30 --text $'httpd 2.4 (berth e2e seed)\n' >/dev/null
"${SKOPEO[@]}" copy -q "${DEST_TLS[@]}" "oci:$WORK/src:1-30" "docker://$R:1-30"
DIGEST=$("${SKOPEO[@]}" inspect "${TLS[@]}" --format '{{.Digest}}' "docker://$R:1-30")
say "digest of 1-30: $DIGEST"
C=("$PY" "$CLIENTLAB/cosign_lab.py")
"${C[@]}" genkey "$WORK/cosign.key.pem" "$WORK/cosign.pub"
say "cosign signature (tag scheme) of $R:1-30"
"${C[@]}" sign --key "$WORK/cosign.key.pem" "userorg/httpd-24:1-30" --mode tag >"$WORK/sign-tag.json"
say "cosign signature (OCI 1.1 referrer) of $R@$DIGEST"
"${C[@]}" sign --key "$WORK/cosign.key.pem" "userorg/httpd-24@$DIGEST" --mode referrers >"$WORK/sign-ref.json"
"${C[@]}" verify --key "$WORK/cosign.pub" "userorg/httpd-24:1-30" --mode tag
"${C[@]}" verify --key "$WORK/cosign.pub" "userorg/httpd-24@$DIGEST" --mode referrers

# 3. The same image encrypted with JWE.
say "encrypted (JWE) -> $R:encrypted"
openssl genrsa -out "$WORK/private-key.pem" 2048 2>/dev/null
openssl rsa -in "$WORK/private-key.pem" -pubout -out "$WORK/public-key.pem" 2>/dev/null
"${SKOPEO[@]}" copy -q --encryption-key "jwe:$WORK/public-key.pem" "oci:$WORK/src:1-30" "oci:$WORK/enc:1"
"${SKOPEO[@]}" copy -q "${DEST_TLS[@]}" "oci:$WORK/enc:1" "docker://$R:encrypted"
raw_manifest "$R:encrypted" | grep -q 'org.opencontainers.image.enc.keys.jwe' \
  || fail "the pushed encrypted manifest lacks the JWE key annotation"

# 4. A tag the delete test may remove (its own image, so deleting it touches no seed tag).
say "image -> $R:to-delete"
"$PY" "$CLIENTLAB/make-image.py" "$WORK/del" --tag to-delete --text $'delete me\n' >/dev/null
"${SKOPEO[@]}" copy -q "${DEST_TLS[@]}" "oci:$WORK/del:to-delete" "docker://$R:to-delete"

# 5. The other image kinds the tags page names: a multi-arch index and a zstd image.
K=$(repo kinds)
say "multi-arch index -> $K:multi, zstd image -> $K:zstd"
"$PY" "$CLIENTLAB/make-image.py" "$WORK/kinds" --tag multi --platforms linux/amd64,linux/arm64 >/dev/null
"${SKOPEO[@]}" copy -q --all "${DEST_TLS[@]}" "oci:$WORK/kinds:multi" "docker://$K:multi"
"$PY" "$CLIENTLAB/make-image.py" "$WORK/kinds" --tag zstd --text "zstd $(date +%s) $RANDOM"$'\n' >/dev/null
"${SKOPEO[@]}" copy -q "${DEST_TLS[@]}" --dest-compress-format zstd "oci:$WORK/kinds:zstd" "docker://$K:zstd"
raw_manifest "$K:zstd" | grep -q 'application/vnd.oci.image.layer.v1.tar+zstd' \
  || fail "skopeo did not push zstd layers (it reuses known gzip blobs: the image must be new)"

# 6. Hostile content and the pager repository, with the clientlab's OCI client (ocilib.py).
say "hostile artifacts -> $(repo hostile), many tags -> $(repo paged)"
CLIENTLAB=$CLIENTLAB ODD_TAG=$ODD_TAG "$PY" "$E2E_DIR/seed_artifacts.py" hostile
CLIENTLAB=$CLIENTLAB "$PY" "$E2E_DIR/seed_artifacts.py" paged 130

TAGS=$("${SKOPEO[@]}" list-tags "${TLS[@]}" "docker://$R")
for t in 1-30 encrypted to-delete "sha256-${DIGEST#sha256:}.sig"; do
  echo "$TAGS" | grep -q "\"$t\"" || fail "tag $t missing from $R"
done
ok
