# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the end-to-end suite: one real control plane per session
(cluster.py), Weft installed from manifests/ (overlays/e2e) and weft-webhook
running on this machine, called by the API server over HTTPS.

The suite skips, saying why, when the control plane has not been built
(tests/e2e/setup-control-plane.sh) and WEFT_E2E_BUILD is not set; with
WEFT_E2E_BUILD=1 it builds it first (long the first time).
"""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster as cl  # noqa: E402
import node as nd  # noqa: E402
import weft  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def bindir():
    build = bool(os.environ.get("WEFT_E2E_BUILD"))
    d = cl.control_plane_bin(build=build)
    if not d and build:
        pytest.fail("WEFT_E2E_BUILD is set but tests/e2e/setup-control-plane.sh failed "
                    "(its output is above)")
    if not d:
        pytest.skip("Kubernetes control plane not built: run tests/e2e/setup-control-plane.sh "
                    "once (about 5 minutes on 2 cores) or set WEFT_E2E_BUILD=1")
    return d


@pytest.fixture(scope="session")
def node_bindir(bindir):
    """The control plane's and the node's binaries (setup-node.sh)."""
    build = bool(os.environ.get("WEFT_E2E_BUILD"))
    d = nd.node_bin(build=build)
    if not d and build:
        pytest.fail("WEFT_E2E_BUILD is set but tests/e2e/setup-node.sh failed "
                    "(its output is above)")
    if not d:
        pytest.skip("e2e node not built: run tests/e2e/setup-node.sh once "
                    "or set WEFT_E2E_BUILD=1")
    return d


@pytest.fixture(scope="session")
def node_images(node_bindir, weft_bin):
    """The node's images (scripts/images.sh --test, CoreDNS) as archives."""
    for b in ("weft-init", "weft-proxy", "weft-webhook", "weft-identity"):
        if not os.access(os.path.join(weft_bin, b), os.X_OK):
            pytest.skip("%s not built: run make" % b)
    d = cl.make_tempdir("images")
    try:
        yield nd.build_images(d, weft_bin, os.path.join(node_bindir, "coredns"))
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def node(node_bindir, node_images):
    """The control plane with a node that runs pods (node.py), for the
    session: started at its first use, stopped at the end (also on failure)."""
    n = nd.NodeCluster(node_bindir, node_images)
    n.start(timeout=180)
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture(scope="session")
def cluster(bindir):
    try:
        c = cl.Cluster(bindir).start()
    except (RuntimeError, TimeoutError):
        # A loopback port picked as free may have been taken meanwhile by
        # another process: one more try with new ports.
        c = cl.Cluster(bindir).start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def weft_bin():
    """A private copy of the Weft binaries (WEFT_BIN, default build/bin), so
    a rebuild while the suite runs changes nothing under it."""
    src = os.path.abspath(os.environ.get("WEFT_BIN") or os.path.join(REPO, "build", "bin"))
    d = cl.make_tempdir("bin")
    os.chmod(d, 0o755)
    try:
        for b in ("weft-webhook", "weft-identity", "weft-discovery", "weft-proxy", "weft-init"):
            if os.access(os.path.join(src, b), os.X_OK):
                shutil.copy2(os.path.join(src, b), os.path.join(d, b))
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def webhook(cluster, weft_bin):
    """weft-webhook on 127.0.0.1, installed as the API server's webhook."""
    exe = os.path.join(weft_bin, "weft-webhook")
    if not os.access(exe, os.X_OK):
        pytest.skip("weft-webhook not built (%s): run make" % exe)
    w = weft.Webhook(cluster, exe)
    try:
        w.install()  # first: it creates the service account the webhook runs as
        w.start()
        yield w
    finally:
        w.stop()


@pytest.fixture
def mesh(webhook):
    """Per test: the e2e webhook configuration is the one installed (another
    test may have applied the plain base) and the webhook is up."""
    webhook.ensure()
    return webhook


@pytest.fixture(scope="session")
def identity(cluster, weft_bin, webhook):
    """weft-identity on 127.0.0.1 (after the manifests are installed: it runs
    as their service account weft-system/weft-identity)."""
    exe = os.path.join(weft_bin, "weft-identity")
    if not os.access(exe, os.X_OK):
        pytest.skip("weft-identity not built (%s): run make" % exe)
    i = weft.Identity(cluster, exe)
    try:
        i.start()
        yield i
    finally:
        i.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, the tails of the logs of what the test ran against."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    args = getattr(item, "funcargs", {})
    w = args.get("mesh") or args.get("webhook")
    if w:
        rep.sections.append(("weft-webhook log", w.logs()))
    i = args.get("identity")
    if i:
        rep.sections.append(("weft-identity log", i.logs()))
    c = args.get("cluster")
    if c:
        for name in ("kube-apiserver", "kube-controller-manager"):
            rep.sections.append((name + " log (tail)", c.logs(name, 3000)))
