#!/usr/bin/env bash
# Signing and trust with the real clients (issue 19), against one berth or two replicas of one.
#   REGISTRY=HOST:PORT [REGISTRY2=HOST:PORT] REGISTRY_USER=admin REGISTRY_PASS=... \
#     bash scripts/trust-clients.sh
# Pushes go to REGISTRY; every pull and API check is made on both registries when REGISTRY2
# is given (two replicas on one database and blob store). The account must be a superuser.
# Signs images with cosign 2 (tag scheme), cosign 3 (sigstore bundle referrer), notation (JWS
# and COSE), another cosign key, a notation certificate nobody trusts, and forges a `.sig` of
# another digest; uploads the keys through the API and checks the statuses berth computes;
# then requires verified signatures on the organization and checks that skopeo and podman pull
# only the verified images while cosign and notation still verify the refused ones, and that
# uploading the other key or removing the policy makes them pullable at the next request.
# Uses the clientlab's helpers (lib.sh) and clients; prints "flow T: ok" or "flow T: FAILED ...".
FLOW=T; CLIENTLAB=${CLIENTLAB:-$(cd "$(dirname "$0")/../../shared/clientlab" && pwd)}
source "$CLIENTLAB/lib.sh"
need skopeo podman cosign2 cosign3 notation curl
export COSIGN_PASSWORD= COSIGN_YES=true
[ -n "$RPASS" ] || fail "REGISTRY_USER and REGISTRY_PASS (a superuser) are required"
export NOTATION_USERNAME="$RUSER" NOTATION_PASSWORD="$RPASS"
REGISTRIES=("$REGISTRY"); [ -n "${REGISTRY2:-}" ] && REGISTRIES+=("$REGISTRY2")
ORG=${TRUST_ORG:-trusted}
NAMESPACE=$ORG
HTTP=(--allow-http-registry)
S=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
PODMAN=(podman "${S[@]}" --events-backend none --cgroup-manager cgroupfs --tmpdir "$WORK/tmp")
on_exit "\"${PODMAN[*]}\" system reset --force; chmod -R u+w \"$WORK/storage\""
cd "$WORK"

# api METHOD PATH [JSON] [REGISTRY]: the body on stdout, failing on an HTTP error.
api() {
  curl -sS --fail-with-body -u "$RUSER:$RPASS" -X "$1" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "http://${4:-$REGISTRY}$2"
}
# json_key KEY-FILE: the PEM file as a JSON string.
json_pem() { "$PY" -c 'import json,sys; print(json.dumps(open(sys.argv[1]).read()))' "$1"; }

for r in "${REGISTRIES[@]}"; do
  printf '%s' "$RPASS" | "${SKOPEO[@]}" login "${TLS[@]}" -u "$RUSER" --password-stdin "$r" >&2 || fail "skopeo login $r"
  printf '%s' "$RPASS" | cosign2 login "$r" -u "$RUSER" --password-stdin >&2 || fail "cosign login $r"
done
api POST /api/v1/organization/ "{\"name\":\"$ORG\"}" >/dev/null || fail "create organization $ORG"

# push NAME [--platforms ...]: a fresh image (or index) at $ORG/NAME:1; prints its digest.
push() {
  local name=$1; shift
  "$PY" "$CLIENTLAB_DIR/make-image.py" "$WORK/img-$name" --tag 1 "$@" >/dev/null
  "${SKOPEO[@]}" copy -q --all "${DEST_TLS[@]}" "oci:$WORK/img-$name:1" "docker://$(repo "$name"):1" >&2 \
    || fail "push $name"
  "${SKOPEO[@]}" inspect --raw "${TLS[@]}" "docker://$(repo "$name"):1" | sha256sum | sed 's/^/sha256:/; s/ .*//'
}

say "keys: two cosign key pairs, two notation test certificates"
cosign2 generate-key-pair >/dev/null 2>&1 || fail "cosign generate-key-pair"
mkdir other && (cd other && cosign2 generate-key-pair >/dev/null 2>&1) || fail "second cosign key pair"
notation cert generate-test --default trusted-signer >&2 || fail "notation cert generate-test"
notation cert generate-test stranger >&2 || fail "second notation certificate"
CERT_DIR=$HOME/.config/notation/truststore/x509/ca
[ -f "$CERT_DIR/trusted-signer/trusted-signer.crt" ] || CERT_DIR=$(dirname "$(dirname "$(find "$HOME" -name trusted-signer.crt | head -1)")")
[ -f "$CERT_DIR/trusted-signer/trusted-signer.crt" ] || fail "notation's test certificate not found"

say "images: signed by cosign 2, cosign 3, notation JWS and COSE, an untrusted key and certificate, a forged .sig, unsigned, and a signed index"
D_COSIGN2=$(push cosign2)
cosign2 sign "${HTTP[@]}" --key cosign.key --tlog-upload=false "$(repo cosign2)@$D_COSIGN2" >&2 || fail "cosign2 sign"
D_COSIGN3=$(push cosign3)
cosign3 sign "${HTTP[@]}" --key cosign.key --use-signing-config=false --tlog-upload=false "$(repo cosign3)@$D_COSIGN3" >&2 2>&1 \
  || fail "cosign3 sign"
D_JWS=$(push notation-jws)
notation sign --insecure-registry --force-referrers-tag=false "$(repo notation-jws)@$D_JWS" >&2 || fail "notation sign (JWS)"
D_COSE=$(push notation-cose)
notation sign --insecure-registry --force-referrers-tag=false --signature-format cose "$(repo notation-cose)@$D_COSE" >&2 \
  || fail "notation sign (COSE)"
D_OTHER=$(push other-key)
cosign2 sign "${HTTP[@]}" --key other/cosign.key --tlog-upload=false "$(repo other-key)@$D_OTHER" >&2 || fail "cosign2 sign (other key)"
cosign3 sign "${HTTP[@]}" --key other/cosign.key --use-signing-config=false --tlog-upload=false "$(repo other-key)@$D_OTHER" >&2 2>&1 \
  || fail "cosign3 sign (other key)"
D_STRANGER=$(push stranger)
notation sign --insecure-registry --force-referrers-tag=false --key stranger "$(repo stranger)@$D_STRANGER" >&2 \
  || fail "notation sign (stranger)"
# A forged signature: the cosign 2 signature of another image, stored as this image's .sig.
D_FORGED=$(push forged)
"${SKOPEO[@]}" copy -q "${SRC_TLS[@]}" "${DEST_TLS[@]}" \
  "docker://$(repo cosign2):sha256-${D_COSIGN2#sha256:}.sig" "docker://$(repo forged):sha256-${D_FORGED#sha256:}.sig" >&2 \
  || fail "store the forged .sig"
D_UNSIGNED=$(push unsigned)
D_INDEX=$(push index --platforms linux/amd64,linux/arm64)
cosign2 sign "${HTTP[@]}" --key cosign.key --tlog-upload=false "$(repo index)@$D_INDEX" >&2 || fail "cosign2 sign (index)"

say "trusted keys: cosign.pub as 'release', the trusted-signer certificate as 'ca' (organization)"
api POST "/api/v1/organization/$ORG/trust/keys" "{\"name\":\"release\",\"kind\":\"cosign\",\"public_key\":$(json_pem cosign.pub)}" >key-release.json \
  || fail "upload cosign key: $(cat key-release.json)"
api POST "/api/v1/organization/$ORG/trust/keys" \
  "{\"name\":\"ca\",\"kind\":\"notation\",\"certificate\":$(json_pem "$CERT_DIR/trusted-signer/trusted-signer.crt")}" >key-ca.json \
  || fail "upload notation certificate: $(cat key-ca.json)"
if api POST "/api/v1/organization/$ORG/trust/keys" '{"name":"bad","kind":"cosign","public_key":"not a key"}' >bad.json 2>&1; then
  fail "a malformed key was accepted"
fi

# status_of NAME [REGISTRY]: the status and keys of tag 1, as the tag API reports them.
status_of() {
  api GET "/api/v1/repository/$ORG/$1/tag/?specificTag=1" "" "${2:-$REGISTRY}" | "$PY" -c '
import json,sys
tags=[t for t in json.load(sys.stdin)["tags"] if t["name"]=="1"]
s=tags[0].get("signature") or {} if tags else {}
print(s.get("status","?"), ",".join(s.get("keys",[])))'
}
# expect_status NAME STATUS [KEYS]: polls every registry until the status shows (30 s at most).
expect_status() {
  local name=$1 want="$2 ${3:-}" r got
  for r in "${REGISTRIES[@]}"; do
    got=
    for _ in $(seq 1 300); do
      got=$(status_of "$name" "$r") && [ "$got" = "$want" ] && break
      sleep 0.1
    done
    [ "$got" = "$want" ] || fail "$name on $r: status '$got', expected '$want'"
  done
  say "$name: $want"
}
expect_status cosign2 verified release
expect_status cosign3 verified release
expect_status notation-jws verified ca
expect_status notation-cose verified ca
expect_status other-key untrusted
expect_status stranger untrusted
expect_status forged invalid
expect_status unsigned unsigned
expect_status index verified release

say "the dashboard's Tags pages show the same statuses"
for r in "${REGISTRIES[@]}"; do
  jar=$WORK/dashboard-$r.cookies
  csrf=$(curl -sS -c "$jar" -b "$jar" "http://$r/signin" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
  [ -n "$csrf" ] || fail "no CSRF token on $r's sign-in page"
  curl -sS -o /dev/null -c "$jar" -b "$jar" -H "Origin: http://$r" --data-urlencode "csrf=$csrf" \
    --data-urlencode "next=/" --data-urlencode "username=$RUSER" --data-urlencode "password=$RPASS" "http://$r/signin" \
    || fail "dashboard sign-in on $r"
  for pair in "cosign2:verified by release" "notation-cose:verified by ca" "other-key:signed, untrusted key" \
      "forged:invalid signature"; do
    page=$(curl -sS -b "$jar" "http://$r/repository/$ORG/${pair%%:*}")
    grep -qF "${pair#*:}" <<<"$page" || fail "$r's Tags page of ${pair%%:*} does not say '${pair#*:}'"
  done
  page=$(curl -sS -b "$jar" "http://$r/repository/$ORG/unsigned")
  if grep -qE 'verified by|untrusted key|invalid signature' <<<"$page"; then fail "$r's Tags page of an unsigned image shows a signature status"; fi
done

say "require verified signatures on $ORG"
api PUT "/api/v1/organization/$ORG/trust/policy" '{"require":"verified"}' >/dev/null || fail "set the policy"
[ "$(api GET "/api/v1/organization/$ORG/trust/policy" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["require"])')" = verified ] \
  || fail "the policy does not read back"

# pullable NAME REGISTRY: skopeo copies the image (every blob) out of the registry.
pullable() {
  rm -rf "$WORK/out"
  "${SKOPEO[@]}" copy -q --all "${SRC_TLS[@]}" "docker://$2/$ORG/$1:1" "oci:$WORK/out:1" >"$WORK/pull.log" 2>&1
}
expect_pull() {
  local r
  for r in "${REGISTRIES[@]}"; do pullable "$1" "$r" || fail "skopeo could not pull verified $1 from $r: $(tail -2 "$WORK/pull.log")"; done
}
expect_refused() {
  local r
  for r in "${REGISTRIES[@]}"; do
    if pullable "$1" "$r"; then fail "skopeo pulled $1 from $r, which is not verified"; fi
    grep -qi 'denied\|403\|forbidden' "$WORK/pull.log" || fail "pulling $1 from $r failed otherwise: $(tail -2 "$WORK/pull.log")"
    if "${PODMAN[@]}" pull -q --tls-verify=false "$r/$ORG/$1:1" >"$WORK/podman.log" 2>&1; then
      fail "podman pulled $1 from $r, which is not verified"
    fi
    grep -qi 'denied\|403\|forbidden' "$WORK/podman.log" || fail "podman's pull of $1 from $r failed otherwise: $(tail -2 "$WORK/podman.log")"
  done
}
for name in cosign2 cosign3 notation-jws notation-cose index; do expect_pull "$name"; done
"${PODMAN[@]}" pull -q --tls-verify=false "$REGISTRY/$ORG/cosign2:1" >/dev/null 2>"$WORK/podman.log" \
  || fail "podman could not pull verified cosign2: $(tail -2 "$WORK/podman.log")"
for name in other-key stranger forged unsigned; do expect_refused "$name"; done
say "verified images pull, the others get 403"

say "the signatures of refused images still verify with their clients"
cosign2 verify "${HTTP[@]}" --key other/cosign.pub --insecure-ignore-tlog "$(repo other-key)@$D_OTHER" >/dev/null 2>&1 \
  || fail "cosign verify of the refused image signed with the other key"
cosign3 verify "${HTTP[@]}" --key other/cosign.pub --insecure-ignore-tlog "$(repo other-key)@$D_OTHER" >/dev/null 2>&1 \
  || fail "cosign 3 verify of the refused image signed with the other key"
printf '{"version":"1.0","trustPolicies":[{"name":"p","registryScopes":["*"],"signatureVerification":{"level":"strict"},"trustStores":["ca:stranger"],"trustedIdentities":["*"]}]}' >policy-stranger.json
notation policy import --force policy-stranger.json >/dev/null 2>&1 || fail "notation policy import"
notation verify --insecure-registry "$(repo stranger)@$D_STRANGER" >&2 || fail "notation verify of the refused stranger-signed image"

say "uploading the other key makes other-key pullable at the next request"
api POST "/api/v1/organization/$ORG/trust/keys" "{\"name\":\"other\",\"kind\":\"cosign\",\"public_key\":$(json_pem other/cosign.pub)}" >/dev/null \
  || fail "upload the other key"
expect_pull other-key
expect_status other-key verified other
say "removing the policy makes everything pullable at the next request"
api PUT "/api/v1/organization/$ORG/trust/policy" '{"require":"none"}' >/dev/null || fail "remove the policy"
for name in stranger forged unsigned; do expect_pull "$name"; done
ok
