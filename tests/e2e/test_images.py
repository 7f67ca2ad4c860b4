# SPDX-License-Identifier: Apache-2.0
"""scripts/images.sh (make images): Weft's OCI images, built without a
container daemon, are reproducible, minimal, non-root where they can be,
labelled, and named as manifests/ and templates/mesh.yaml name them."""
import hashlib
import io
import json
import os
import subprocess
import tarfile

import pytest
import yaml

import cluster as cl

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGES_SH = os.path.join(REPO, "scripts", "images.sh")
VERSION = open(os.path.join(REPO, "VERSION")).read().strip()
PARTS = ("weft-init", "weft-proxy", "weft-webhook", "weft-identity", "weft-discovery", "pause")


def read_image(path):
    """(index, manifest, config, {path: TarInfo}) of an image archive."""
    with tarfile.open(path) as tf:
        blob = lambda d: tf.extractfile("blobs/sha256/" + d.split(":")[1]).read()  # noqa: E731
        index = json.loads(tf.extractfile("index.json").read())
        mdesc = index["manifests"][0]
        mbytes = blob(mdesc["digest"])
        assert "sha256:" + hashlib.sha256(mbytes).hexdigest() == mdesc["digest"]
        manifest = json.loads(mbytes)
        config = json.loads(blob(manifest["config"]["digest"]))
        layer = blob(manifest["layers"][0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as lt:
        files = {("/" + m.name): m for m in lt.getmembers()}
    return index, manifest, config, files


@pytest.fixture(scope="module")
def built(weft_bin):
    for b in PARTS[:-1]:
        if not os.access(os.path.join(weft_bin, b), os.X_OK):
            pytest.skip("%s not built: run make" % b)
    dirs = [cl.make_tempdir("images"), cl.make_tempdir("images")]
    try:
        for d in dirs:
            subprocess.run(["bash", IMAGES_SH, d, weft_bin], check=True,
                           stdout=subprocess.DEVNULL)
        yield dirs
    finally:
        for d in dirs:
            subprocess.run(["rm", "-rf", d])


def test_images_are_reproducible(built):
    for part in PARTS:
        a, b = (open(os.path.join(d, part + ".tar"), "rb").read() for d in built)
        assert hashlib.sha256(a).hexdigest() == hashlib.sha256(b).hexdigest(), part
        assert read_image(os.path.join(built[0], part + ".tar"))[0] == \
            read_image(os.path.join(built[1], part + ".tar"))[0]


def test_images_are_named_as_the_manifests_name_them(built):
    names = {read_image(os.path.join(built[0], p + ".tar"))[0]["manifests"][0]
             ["annotations"]["io.containerd.image.name"] for p in PARTS}
    mesh = yaml.safe_load(open(os.path.join(REPO, "templates", "mesh.yaml")))
    wanted = {mesh["images"]["proxy"], mesh["images"]["init"]}
    for f, c in (("base/webhook.yaml", "weft-webhook"), ("base/identity.yaml", "weft-identity"),
                 ("discovery/discovery.yaml", "weft-discovery")):
        for doc in yaml.safe_load_all(open(os.path.join(REPO, "manifests", f))):
            if doc and doc.get("kind") == "Deployment":
                wanted |= {x["image"] for x in doc["spec"]["template"]["spec"]["containers"]
                           if x["name"] == c}
    assert len(wanted) == 5
    assert wanted <= names
    assert "ghcr.io/weft-mesh/pause:" + VERSION in names


def test_images_are_minimal_non_root_and_labelled(built, weft_bin):
    for part in PARTS:
        _, manifest, config, files = read_image(os.path.join(built[0], part + ".tar"))
        labels = config["config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == VERSION
        # a commit of this repository (HEAD when built; others may commit since)
        rev = labels["org.opencontainers.image.revision"].split("-")[0]
        assert len(rev) == 40 and subprocess.run(
            ["git", "-C", REPO, "cat-file", "-e", rev + "^{commit}"]).returncode == 0
        assert manifest["annotations"] == labels
        regular = sorted(p for p, m in files.items() if m.isreg())
        libs = [p for p in regular if ".so" in os.path.basename(p)]
        others = [p for p in regular if p not in libs and not p.startswith("/etc/")]
        user = config["config"].get("User", "")
        if part == "pause":
            assert others == ["/pause"] and not libs  # static
        elif part == "weft-init":
            assert user == "0:0"  # NET_ADMIN as root, no more (the pod says so)
            assert others == ["/usr/local/bin/weft-init", "/usr/sbin/xtables-legacy-multi",
                              "/usr/sbin/xtables-nft-multi"]
            exts = sorted(os.path.basename(p) for p in libs if "/xtables/" in p)
            assert exts == ["libxt_REDIRECT.so", "libxt_owner.so", "libxt_standard.so",
                            "libxt_tcp.so"]
            links = {p for p, m in files.items() if m.issym()}
            for fam in ("iptables", "ip6tables"):
                for be in ("nft", "legacy"):
                    for op in ("save", "restore"):
                        assert "/usr/sbin/%s-%s-%s" % (fam, be, op) in links
        else:
            assert others == ["/usr/local/bin/" + part]
            assert user == ("15100:15100" if part == "weft-proxy" else "65532:65532")
            # exactly the libraries the binary loads (ldd), nothing else
            ldd = subprocess.run(["ldd", os.path.join(weft_bin, part)], stdout=subprocess.PIPE,
                                 text=True).stdout
            want = {w for line in ldd.splitlines() for w in line.split() if w.startswith("/")}
            assert set(libs) == want
        assert all(m.uid == 0 and m.gid == 0 and m.mtime == 0 for m in files.values())


@pytest.fixture(scope="module")
def app_images():
    """The conformance apps' images (images.sh --apps-only) built twice
    from what tests/e2e/setup-apps.sh built; skipped when it has not run."""
    r = subprocess.run(["bash", os.path.join(REPO, "tests", "e2e", "setup-apps.sh"), "--check"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if r.returncode != 0:
        pytest.skip("conformance test apps not built: run tests/e2e/setup-apps.sh")
    appdir = r.stdout.strip().splitlines()[-1]
    dirs = [cl.make_tempdir("app-images"), cl.make_tempdir("app-images")]
    try:
        for d in dirs:
            subprocess.run(["bash", IMAGES_SH, "--apps-only", appdir, d], check=True,
                           stdout=subprocess.DEVNULL)
        yield appdir, dirs
    finally:
        for d in dirs:
            subprocess.run(["rm", "-rf", d])


def test_app_images_are_reproducible_static_non_root_and_named_for_the_suite(app_images):
    appdir, dirs = app_images
    stamp = dict(kv.split("=", 1) for kv in open(os.path.join(appdir, "APPS-STAMP")).read().split())
    with open(os.path.join(appdir, "conformance-images.txt")) as f:
        suite_names = f.read().split()
    tags = lambda part: {n for n in suite_names if "/%s:" % part in n}  # noqa: E731
    want = {
        "echo-basic": (tags("echo-basic"), "65532:65532", ["/echo-basic"], stamp["gateway-api"]),
        "echo-advanced": (tags("echo-advanced"), "1338:1338",
                          ["/cert.crt", "/cert.key", "/usr/local/bin/client",
                           "/usr/local/bin/server"], stamp["istio"]),
    }
    # the release names echo-basic under three tags; one image answers to all
    assert len(want["echo-basic"][0]) == 3 and len(want["echo-advanced"][0]) == 1
    assert sorted(f for f in os.listdir(dirs[0]) if f.endswith(".tar")) == \
        sorted(p + ".tar" for p in want)
    for part, (names, user, others, version) in want.items():
        a, b = (open(os.path.join(d, part + ".tar"), "rb").read() for d in dirs)
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest(), part
        index, manifest, config, files = read_image(os.path.join(dirs[0], part + ".tar"))
        assert {m["annotations"]["io.containerd.image.name"] for m in index["manifests"]} == names
        assert len({m["digest"] for m in index["manifests"]}) == 1
        assert config["config"]["User"] == user
        labels = config["config"]["Labels"]
        assert labels["org.opencontainers.image.version"] == version
        assert labels["org.opencontainers.image.title"] == part
        assert manifest["annotations"] == labels
        regular = sorted(p for p, m in files.items() if m.isreg() and not p.startswith("/etc/"))
        assert regular == others  # static Go binaries: no libraries, no loader
        for p in regular:
            if not p.startswith("/cert"):
                assert files[p].mode & 0o111
    # the names the suite's manifests pull, so it runs with no registry
    used = set()
    for f in ("conformance-base.yaml", "conformance-mesh.yaml"):
        for doc in yaml.safe_load_all(open(os.path.join(appdir, f))):
            if doc and doc.get("kind") == "Deployment":
                used |= {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]
                         if "gateway-api/echo" in c["image"]}
    assert used and used <= set(suite_names)
