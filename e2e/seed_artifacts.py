#!/usr/bin/env python3
"""Pushes the dashboard tests' hand-made content with the clientlab's OCI client (ocilib.py).

  seed_artifacts.py hostile      userorg/hostile: markup in every place a page may show
  seed_artifacts.py paged N      userorg/paged: N tags p-000.. on one small image

userorg/hostile gets
  annotated   an OCI image whose manifest and layer annotations (values and one key) hold markup
  $ODD_TAG    the same manifest under a legal but odd tag name
  1.0.0       a Helm chart "evil" whose Chart.yaml description holds markup
  note        an OCI 1.1 artifact (artifactType application/vnd.berth.e2e.note.v1+json, empty
              config, one text/plain layer whose title annotation holds markup)
Env: REGISTRY, REGISTRY_USER, REGISTRY_PASS (ocilib's), CLIENTLAB (the clientlab folder), ODD_TAG.
"""
import gzip, io, json, os, sys, tarfile

sys.path.insert(0, os.environ["CLIENTLAB"])
import ocilib  # noqa: E402  (the clientlab's registry client)

SCRIPT = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=1>"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
NOTE_TYPE = "application/vnd.berth.e2e.note.v1+json"
CREATED = "2024-05-01T12:00:00Z"


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def targz(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    return raw, gzip.compress(raw, mtime=0)


def desc(reg, repo, media_type, data, annotations=None):
    d = {"mediaType": media_type, "digest": reg.push_blob(repo, data), "size": len(data)}
    if annotations:
        d["annotations"] = annotations
    return d


def image(reg, repo, text, layer_annotations=None, annotations=None, labels=None):
    raw, gz = targz({"hello.txt": text.encode()})
    cfg = compact({"architecture": "amd64", "os": "linux", "created": CREATED,
                   "config": {"Cmd": ["/hello.txt"], **({"Labels": labels} if labels else {})},
                   "rootfs": {"type": "layers", "diff_ids": [ocilib.sha256(raw)]}})
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": desc(reg, repo, IMAGE_CONFIG, cfg),
         "layers": [desc(reg, repo, LAYER_GZIP, gz, layer_annotations)]}
    if annotations:
        m["annotations"] = annotations
    return compact(m)


def put(reg, repo, tag, body):
    digest, _ = reg.put_manifest(repo, tag, body, OCI_MANIFEST)
    print(f"[seed] {repo}:{tag} {digest}", file=sys.stderr)
    return digest


def hostile(reg):
    repo = "userorg/hostile"
    odd = os.environ["ODD_TAG"]
    body = image(reg, repo, "hostile\n",
                 layer_annotations={"org.opencontainers.image.title": SCRIPT,
                                    f'x.e2e/"><b>key</b>{IMG}': SCRIPT + IMG},
                 annotations={"org.opencontainers.image.description": SCRIPT,
                              "org.opencontainers.image.created": CREATED,
                              "org.opencontainers.image.source": "javascript:window.__pwned=1"},
                 labels={"maintainer": SCRIPT})
    put(reg, repo, "annotated", body)
    put(reg, repo, odd, body)

    chart = {"apiVersion": "v2", "name": "evil", "version": "1.0.0", "appVersion": "1.0.0",
             "type": "application", "description": SCRIPT + IMG}
    chart_yaml = ("apiVersion: v2\nname: evil\nversion: 1.0.0\nappVersion: 1.0.0\n"
                  f"description: '{SCRIPT}{IMG}'\n").encode()
    _, tgz = targz({"evil/Chart.yaml": chart_yaml, "evil/values.yaml": b"{}\n"})
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
         "config": desc(reg, repo, HELM_CONFIG, compact(chart)),
         "layers": [desc(reg, repo, HELM_LAYER, tgz)],
         "annotations": {"org.opencontainers.image.title": "evil",
                         "org.opencontainers.image.version": "1.0.0",
                         "org.opencontainers.image.description": SCRIPT + IMG}}
    put(reg, repo, "1.0.0", compact(m))

    empty = desc(reg, repo, ocilib.EMPTY_MT, ocilib.EMPTY_JSON)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": NOTE_TYPE, "config": empty,
         "layers": [desc(reg, repo, "text/plain", b"a note\n",
                         {"org.opencontainers.image.title": SCRIPT})],
         "annotations": {"org.opencontainers.image.created": CREATED}}
    put(reg, repo, "note", compact(m))


def paged(reg, n):
    repo = "userorg/paged"
    body = image(reg, repo, "paged\n")
    for i in range(n):
        reg.put_manifest(repo, f"p-{i:03d}", body, OCI_MANIFEST)
    print(f"[seed] {repo}: {n} tags p-000..p-{n - 1:03d}", file=sys.stderr)


def main(argv):
    reg = ocilib.Registry()
    if argv[:1] == ["hostile"]:
        hostile(reg)
    elif argv[:1] == ["paged"] and len(argv) == 2:
        paged(reg, int(argv[1]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
