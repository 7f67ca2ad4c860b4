# SPDX-License-Identifier: Apache-2.0
"""A real Kubernetes node on this machine for the e2e suite: the control
plane of cluster.py plus kube-scheduler, containerd + runc, the kubelet,
kube-proxy (iptables mode) and CoreDNS, on a bridge in 198.18.0.0/15 with
nothing routed out. Built by setup-node.sh; images by scripts/images.sh.

What it does to the host, and undoes in stop() (and the next start undoes
for a run that was killed), with the reason for each:

- bridge BRIDGE with NODE_IP/24: the pods' network. The CNI bridge plugin
  runs with isGateway false, so it neither takes the gateway address nor
  turns on net.ipv4.ip_forward; the host holds NODE_IP itself.
- net.ipv4.conf.BRIDGE.forwarding=1 (gone with the bridge): kube-proxy's DNAT
  of a pod's packet to a ClusterIP happens in the bridge's netfilter hook,
  and the kernel then drops it unless its input device forwards. The global
  ip_forward stays 0, and chain GUARD (mangle FORWARD) drops anything
  forwarded between the bridge and another device.
- route SERVICE_CIDR dev BRIDGE: ClusterIPs from the host never take the
  default route; pods get the same range via NODE_IP (a CNI ipam route).
- kube-proxy's KUBE-* chains (removed by `kube-proxy --cleanup`).
- the kubelet's tmpfs volume mounts under the node's directory, and the
  kubepods cgroups (cgroup v1 here, cgroupfs driver).
The kubelet runs with a PATH without iptables, so it adds no KUBE-FIREWALL
or canary chains to the host.

containerd (and so every shim and container) runs as PID 1 of its own PID
and mount namespace, a child of the test process: when the test process
dies, however it dies, the kernel kills every container with it, and the
mounts containerd made (rootfs overlays, network-namespace files) vanish with
its mount namespace. The node's directory is a shared mount, so the volumes
the kubelet mounts there (in the host's namespace) propagate into it.

Only one node fits a machine (the bridge, the kubepods cgroups and the
node's name are host-wide): NodeCluster takes LOCK, waiting for another run.
"""
import fcntl
import glob
import json
import os
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import cluster as cl

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SETUP = os.path.join(HERE, "setup-node.sh")
IMAGES_SH = os.path.join(REPO, "scripts", "images.sh")
OCI_IMAGE = os.path.join(REPO, "scripts", "oci-image.py")

BRIDGE = "weft-e2e0"
NODE_IP = "198.18.64.1"
POD_SUBNET = "198.18.64.0/24"
SERVICE_CIDR = cl.SERVICE_CIDR
DNS_IP = "198.19.0.10"
NODE_NAME = "weft-e2e-node"
GUARD = "WEFT-E2E-GUARD"
SYNC_STAMP_V4 = 'kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"}'
LOCK = "/run/weft-e2e-node.lock"
CNI_BIN = "/usr/lib/cni"
PAUSE = "ghcr.io/weft-mesh/pause:%s" % open(os.path.join(REPO, "VERSION")).read().strip()
COREDNS = "weft.local/e2e/coredns:1"
BUSYBOX = "weft.local/e2e/busybox:1"
# Fixed paths containerd and the kubelet create whatever they are told (shim
# sockets, the device-plugin socket): removed at the end when the node made them.
HOST_DIRS = ("/run/containerd", "/var/lib/kubelet")
# Debian 12: /bin and /sbin link to /usr/bin and /usr/sbin, and iptables is in
# /usr/sbin: without it on its PATH the kubelet leaves the host's firewall alone.
KUBELET_PATH = "/usr/local/bin:/usr/bin:/bin"


def node_bin(build=False):
    """The directory with the node's binaries (and the control plane's), or
    None when they are not built. build=True builds what is missing."""
    args = [SETUP] if build else [SETUP, "--check"]
    r = subprocess.run(["bash"] + args, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        return None
    return r.stdout.strip().splitlines()[-1]


def build_images(out, weft_bin, coredns_bin):
    """Weft's images, pause and the suite's test images into out (archives)."""
    os.makedirs(out, exist_ok=True)
    subprocess.run(["bash", IMAGES_SH, "--test", out, weft_bin], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([sys.executable, OCI_IMAGE, "--name", COREDNS,
                    "--out", os.path.join(out, "coredns.tar"),
                    "--file", coredns_bin + ":/coredns", "--user", "65532:65532",
                    "--entrypoint", "/coredns"], check=True, stdout=subprocess.DEVNULL)
    return out


def sh(*argv, check=True, **kw):
    return subprocess.run(list(argv), check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)


def dns_lookup(server, name, timeout=1.0):
    """The first A record the DNS server at server:53 gives for name, or
    None (no answer within timeout, an error, or no A record)."""
    qid = os.getpid() & 0xFFFF
    query = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0" + \
        struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(query, (server, 53))
            reply = s.recv(4096)
        except OSError:
            return None
    try:
        rid, flags, _, an = struct.unpack(">HHHH", reply[:8])
        if rid != qid or flags & 0x000F:
            return None
        at = len(query)  # the question comes back as it was asked
        for _ in range(an):
            while reply[at] and reply[at] < 0xC0:  # the owner's name: labels...
                at += 1 + reply[at]
            at += 2 if reply[at] else 1  # ...ending in a pointer, or the root
            rtype, _, _, rdlen = struct.unpack(">HHIH", reply[at:at + 10])
            at += 10
            if rtype == 1 and rdlen == 4:
                return socket.inet_ntoa(reply[at:at + 4])
            at += rdlen
    except (struct.error, IndexError, OSError):  # a short or malformed reply
        pass
    return None


# --- what the node adds to the host ------------------------------------------
def host_footprint():
    """What a node leaves in the host: its bridge and veths, routes and
    addresses in its ranges, KUBE-*/guard chains and rules, mounts of node
    directories, kubepods cgroups, forwarding sysctls, its processes. Empty
    lists everywhere when no node runs (test_node checks after teardown)."""
    fp = {}
    links = sh("ip", "-o", "link", "show").stdout.splitlines()
    fp["links"] = sorted(l.split(":")[1].strip() for l in links
                         if BRIDGE in l)
    fp["addrs"] = sorted(l for l in sh("ip", "-o", "addr", "show").stdout.splitlines()
                         if "198.18.64." in l)
    fp["routes"] = sorted(l for l in sh("ip", "route", "show", "table", "all").stdout.splitlines()
                          if BRIDGE in l or "198.19." in l or "198.18.64." in l)
    rules = []
    for tool in ("iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save",
                 "ip6tables-legacy-save"):
        if shutil.which(tool):
            out = sh(tool, check=False).stdout
            rules += ["%s: %s" % (tool, l) for l in out.splitlines()
                      if ("KUBE-" in l or GUARD in l or BRIDGE in l or "198.1" in l)
                      and not l.startswith("#")]
    fp["iptables"] = sorted(rules)
    with open("/proc/self/mountinfo") as f:
        fp["mounts"] = sorted(l.split()[4] for l in f
                              if "weft-e2e-cluster-" in l.split()[4]
                              or l.split()[4].startswith(("/run/containerd", "/var/lib/kubelet")))
    fp["cgroups"] = sorted(glob.glob("/sys/fs/cgroup/*/kubepods"))
    fp["sysctl"] = {"ip_forward": open("/proc/sys/net/ipv4/ip_forward").read().strip()}
    procs = []
    for p in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(p, "rb") as f:
                argv0 = f.read().split(b"\0")[0]
        except OSError:
            continue
        if os.path.basename(argv0).decode(errors="replace") in (
                "containerd", "containerd-shim-runc-v2", "kubelet", "kube-proxy",
                "kube-scheduler", "coredns"):
            procs.append(argv0.decode(errors="replace"))
    fp["processes"] = sorted(procs)
    return fp


def guard_up():
    guard_down()
    ipt = ("iptables", "-w", "-t", "mangle")
    sh(*ipt, "-N", GUARD)
    sh(*ipt, "-A", GUARD, "-i", BRIDGE, "!", "-o", BRIDGE, "-j", "DROP")
    sh(*ipt, "-A", GUARD, "!", "-i", BRIDGE, "-o", BRIDGE, "-j", "DROP")
    sh(*ipt, "-I", "FORWARD", "1", "-j", GUARD)


def guard_down():
    ipt = ("iptables", "-w", "-t", "mangle")
    while sh(*ipt, "-D", "FORWARD", "-j", GUARD, check=False).returncode == 0:
        pass
    sh(*ipt, "-F", GUARD, check=False)
    sh(*ipt, "-X", GUARD, check=False)


def remove_kube_chains():
    """What `kube-proxy --cleanup` leaves (KUBE-FIREWALL in filter INPUT and
    OUTPUT, canaries, the backend hint) and anything else named KUBE-*: the
    jumps to them from built-in chains, then the chains, in every table of
    both backends and families."""
    for fam in ("iptables", "ip6tables"):
        for be in ("nft", "legacy"):
            tool, save = "%s-%s" % (fam, be), "%s-%s-save" % (fam, be)
            if not shutil.which(save):
                continue
            out = sh(save, check=False).stdout
            if "KUBE-" not in out:
                continue
            table, chains = None, []
            for line in out.splitlines():
                if line.startswith("*"):
                    table = line[1:]
                elif line.startswith(":KUBE-"):
                    chains.append((table, line[1:].split()[0]))
                elif line.startswith("-A ") and "KUBE-" in line \
                        and not line.split()[1].startswith("KUBE-"):
                    sh(tool, "-w", "-t", table, "-D", *shlex.split(line)[1:], check=False)
            for table, chain in chains:
                sh(tool, "-w", "-t", table, "-F", chain, check=False)
            for table, chain in chains:
                sh(tool, "-w", "-t", table, "-X", chain, check=False)


def unmount_under(d):
    for _ in range(5):
        mps = cl.mounts_under(d)
        if not mps:
            return
        for mp in mps:
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)


def kill_kubepods():
    """SIGKILLs whatever is left in the kubepods cgroups, then removes them."""
    for f in glob.glob("/sys/fs/cgroup/*/kubepods/**/cgroup.procs", recursive=True):
        try:
            pids = [int(x) for x in open(f).read().split()]
        except OSError:
            continue
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for top in glob.glob("/sys/fs/cgroup/*/kubepods"):
        for dirpath, _, _ in sorted(os.walk(top), key=lambda x: -len(x[0])):
            while True:
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        print("node: cannot remove %s" % dirpath, file=sys.stderr)
                        break
                    time.sleep(0.1)


def host_cleanup(bindir, dirs):
    """Undoes everything a node (running or dead) did to the host, in an
    order that never deletes through a mount: processes first, then mounts,
    then cgroups, network and chains, and only then the directories."""
    for d in dirs:
        unmount_under(d)
    kill_kubepods()
    sh("ip", "link", "del", BRIDGE, check=False)  # its sysctl and routes go with it
    guard_down()
    kp = os.path.join(bindir, "kube-proxy") if bindir else None
    if kp and os.access(kp, os.X_OK):
        r = sh(kp, "--cleanup", "--v=0", check=False)
        if r.returncode != 0:
            print("node: kube-proxy --cleanup:", r.stdout[-2000:], file=sys.stderr)
    remove_kube_chains()
    for d in dirs:
        try:
            with open(os.path.join(d, "node")) as f:
                made = [p for p in f.read().split() if p in HOST_DIRS]
        except OSError:
            made = []
        for p in made:
            if not cl.mounts_under(p):
                shutil.rmtree(p, ignore_errors=True)
        if not cl.mounts_under(d):
            shutil.rmtree(d, ignore_errors=True)


def reap_stale_nodes(bindir):
    """With LOCK held no other node runs: any node directory left is from a
    run that was killed. Its containers died with it (see the module
    comment); its host changes are undone here."""
    stale = [d for d in glob.glob(os.path.join(cl.tempfile.gettempdir(), "weft-e2e-cluster-*"))
             if os.path.exists(os.path.join(d, "node"))]
    if stale or sh("ip", "link", "show", BRIDGE, check=False).returncode == 0:
        print("node: cleaning up after a killed run: %s" % (stale or BRIDGE), file=sys.stderr)
        host_cleanup(bindir, stale)


LOCK_FD_ENV = "WEFT_E2E_NODE_LOCK_FD"  # a descriptor of LOCK, flocked by a parent for this process


def take_lock(timeout=900):
    """LOCK, held by the returned descriptor (closing it releases it, and so
    does the process's death). With LOCK_FD_ENV set (a parent took LOCK and
    handed its descriptor down), a duplicate of that: the parent keeps LOCK
    when this process dies."""
    held = os.environ.get(LOCK_FD_ENV)
    if held:
        return os.dup(int(held))
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise TimeoutError("another e2e node holds %s" % LOCK)
            time.sleep(1)


def reap(bindir):
    """Undoes what a killed run's node left, as a node's start does."""
    fd = take_lock()
    try:
        reap_stale_nodes(bindir)
    finally:
        os.close(fd)


class NodeCluster(cl.Cluster):
    """Cluster + a node. start() returns when the node is Ready, kube-proxy
    has synced and CoreDNS answers; stop() leaves the host as it found it."""

    def __init__(self, bindir, images_dir, lock_timeout=900):
        self.lock_fd = take_lock(lock_timeout)
        reap_stale_nodes(bindir)  # before Cluster.__init__ looks at stale directories
        made = [p for p in HOST_DIRS if not os.path.exists(p)]
        self.images_dir = images_dir
        self.timings = {}
        self.node = NODE_NAME
        self.node_ip = NODE_IP
        super().__init__(bindir, controller_manager=True, address=NODE_IP)
        with open(os.path.join(self.dir, "node"), "w") as f:
            f.write("".join(p + "\n" for p in made))  # host directories to remove

    def apiserver_args(self):
        crt, key = self.ca.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                 org="system:masters", client=True)
        return ["--kubelet-client-certificate", crt, "--kubelet-client-key", key,
                # the API server reaches the kubelet at the node's address
                "--kubelet-preferred-address-types", "InternalIP"]

    def _spawn_env(self, name, argv, env):
        path = os.environ.get("PATH", "")
        os.environ["PATH"] = env
        try:
            return self._spawn(name, argv)
        finally:
            os.environ["PATH"] = path

    def _start(self, timeout):
        t0 = time.monotonic()
        self._host_up()
        super()._start(timeout)
        self.timings["control-plane"] = time.monotonic() - t0
        self._start_node(timeout)
        self.timings["total"] = time.monotonic() - t0

    def _host_up(self):
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", NODE_IP + "/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        sh("ip", "route", "replace", SERVICE_CIDR, "dev", BRIDGE, "src", NODE_IP)
        guard_up()
        with open("/proc/sys/net/ipv4/conf/%s/forwarding" % BRIDGE, "w") as f:
            f.write("1")
        # The node's directory as a shared mount: the kubelet's volume mounts
        # under it propagate into containerd's mount namespace (a slave).
        sh("mount", "--bind", self.dir, self.dir)
        sh("mount", "--make-shared", self.dir)

    # --- node ------------------------------------------------------------------
    def _start_node(self, timeout):
        d = self.dir
        t = time.monotonic()
        cni_dir = os.path.join(d, "cni")
        os.makedirs(cni_dir)
        with open(os.path.join(cni_dir, "10-weft-e2e.conflist"), "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": "weft-e2e", "plugins": [{
                "type": "bridge", "bridge": BRIDGE, "isGateway": False, "ipMasq": False,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "dataDir": os.path.join(d, "cni-ipam"),
                         "ranges": [[{"subnet": POD_SUBNET, "rangeStart": "198.18.64.10",
                                      "rangeEnd": "198.18.64.250", "gateway": NODE_IP}]],
                         # no default route: only the node and the ClusterIPs
                         "routes": [{"dst": SERVICE_CIDR, "gw": NODE_IP}]}}]}, f)

        run = os.path.join(d, "run")
        self.sock = os.path.join(run, "containerd.sock")
        cfg = os.path.join(d, "containerd.toml")
        with open(cfg, "w") as f:
            f.write(CONTAINERD_TOML.format(
                root=os.path.join(d, "containerd"), state=run, sock=self.sock,
                opt=os.path.join(d, "opt"), pause=PAUSE, cni=cni_dir, cni_bin=CNI_BIN,
                shim=os.path.join(self.bin, "containerd-shim-runc-v2"),
                runc=shutil.which("runc") or "runc"))
        # PID 1 of a new PID and mount namespace (see the module comment);
        # unshare dies with the test process and takes it along (--kill-child).
        self._spawn("containerd", [
            "unshare", "--pid", "--fork", "--kill-child", "--mount", "--propagation", "slave",
            "--mount-proc", "--", os.path.join(self.bin, "containerd"), "--config", cfg])
        self.wait_for(lambda: self._check_alive() or self.ctr("version", check=False)
                      .returncode == 0, timeout, "containerd")
        self.import_images(self.images_dir)
        self.timings["containerd+images"] = time.monotonic() - t

        self._spawn("kube-scheduler", [
            os.path.join(self.bin, "kube-scheduler"), "--kubeconfig", self.kubeconfig,
            "--bind-address", "127.0.0.1", "--secure-port", "0", "--leader-elect=false",
            "--profiling=false", "--v=1"])

        t = time.monotonic()
        kcrt, kkey = self.ca.issue("kubelet-client", "system:node:" + NODE_NAME,
                                   org="system:masters", client=True)
        scrt, skey = self.ca.issue("kubelet-serving", NODE_NAME, server=True,
                                   dns=(NODE_NAME,), ips=(NODE_IP,))
        kubelet_kc = os.path.join(d, "kubelet.kubeconfig")
        cl.write_kubeconfig(kubelet_kc, self.server, self.ca_crt, kcrt, kkey, user="kubelet")
        kcfg = os.path.join(d, "kubelet.yaml")
        with open(kcfg, "w") as f:
            json.dump({
                "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                # this VM: cgroup v1 (the kubelet refuses it by default), no systemd
                "failCgroupV1": False, "cgroupDriver": "cgroupfs",
                "containerRuntimeEndpoint": "unix://" + self.sock,
                "address": NODE_IP, "port": cl.free_port(NODE_IP), "readOnlyPort": 0,
                "healthzBindAddress": "127.0.0.1", "healthzPort": cl.free_port(),
                "tlsCertFile": scrt, "tlsPrivateKeyFile": skey,
                "authentication": {"anonymous": {"enabled": False},
                                   "webhook": {"enabled": True},
                                   "x509": {"clientCAFile": self.ca_crt}},
                "authorization": {"mode": "Webhook"},
                "clusterDomain": "cluster.local", "clusterDNS": [DNS_IP], "resolvConf": "",
                "maxPods": 50,
                # never evict or collect images on a busy build machine
                "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
                "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                                 "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
                "syncFrequency": "10s", "fileCheckFrequency": "10s",
                "serializeImagePulls": False, "rotateCertificates": False,
                "shutdownGracePeriod": "0s", "shutdownGracePeriodCriticalPods": "0s",
                "containerLogMaxSize": "1Mi", "containerLogMaxFiles": 2,
                "podLogsDir": os.path.join(d, "pod-logs"),
            }, f)
        self._spawn_env("kubelet", [
            os.path.join(self.bin, "kubelet"), "--config", kcfg, "--kubeconfig", kubelet_kc,
            "--root-dir", os.path.join(d, "kubelet"), "--cert-dir", os.path.join(d, "pki", "kubelet"),
            "--hostname-override", NODE_NAME, "--node-ip", NODE_IP, "--v=1"], KUBELET_PATH)

        def ready():
            self._check_alive()
            r = self.kubectl("get", "node", NODE_NAME, "-o",
                             "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                             check=False)
            return r.returncode == 0 and r.stdout.strip() == "True"
        self.wait_for(ready, timeout, "node %s Ready" % NODE_NAME, interval=0.3)
        self.timings["kubelet-ready"] = time.monotonic() - t

        t = time.monotonic()
        self._start_kube_proxy(timeout)
        self.timings["kube-proxy-synced"] = time.monotonic() - t
        t = time.monotonic()
        self._start_coredns(timeout)
        self.timings["coredns-ready"] = time.monotonic() - t

    def _start_kube_proxy(self, timeout):
        d = self.dir
        crt, key = self.ca.issue("kube-proxy", "system:kube-proxy", client=True)
        kc = os.path.join(d, "kube-proxy.kubeconfig")
        cl.write_kubeconfig(kc, self.server, self.ca_crt, crt, key, user="kube-proxy")
        cfg = os.path.join(d, "kube-proxy.yaml")
        healthz = "127.0.0.1:%d" % cl.free_port()
        metrics = "127.0.0.1:%d" % cl.free_port()
        with open(cfg, "w") as f:
            json.dump({
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "mode": "iptables",
                "clientConnection": {"kubeconfig": kc},
                "hostnameOverride": NODE_NAME,
                "bindAddress": NODE_IP,
                "clusterCIDR": POD_SUBNET,
                "healthzBindAddress": healthz,
                "metricsBindAddress": metrics,
                "nodePortAddresses": [NODE_IP + "/32"],
                # 0: leave nf_conntrack_max and the conntrack timeouts alone
                "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                              "tcpCloseWaitTimeout": "0s"},
                # false: no net.ipv4.conf.all.route_localnet=1
                "iptables": {"localhostNodePorts": False, "masqueradeAll": False,
                             "syncPeriod": "30s", "minSyncPeriod": "0s"},
            }, f)
        self._spawn("kube-proxy", [os.path.join(self.bin, "kube-proxy"), "--config", cfg,
                                   "--v=1"])

        # Not /healthz: it answers 200 from the start, before the first sync
        # (pkg/proxy/healthcheck counts a proxier that never synced as
        # starting up, so healthy). The sync's own timestamp is set only
        # once the rules of every Service known at that point are written.
        def synced():
            self._check_alive()
            try:
                with urllib.request.urlopen("http://%s/metrics" % metrics, timeout=2) as r:
                    text = r.read().decode()
            except OSError:
                return False
            return any(l.startswith(SYNC_STAMP_V4 + " ") and float(l.split()[1]) > 0
                       for l in text.splitlines())
        self.wait_for(synced, timeout, "kube-proxy's first rules sync", interval=0.3)

    def _start_coredns(self, timeout):
        # Only cluster.local and the reverse zones, no forward: nothing
        # outside the cluster is ever asked.
        corefile = (".:53 {\n    errors\n    health 127.0.0.1:8080\n    ready :8181\n"
                    "    kubernetes cluster.local in-addr.arpa ip6.arpa {\n"
                    "        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n"
                    "        ttl 5\n    }\n    cache 5\n    loadbalance\n}\n")
        pod = {
            "serviceAccountName": "coredns", "dnsPolicy": "Default",
            "priorityClassName": "system-cluster-critical",
            # port 53 as uid 65532, without a capability (a safe sysctl)
            "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start",
                                             "value": "0"}]},
            "terminationGracePeriodSeconds": 1,
            "volumes": [{"name": "cfg", "configMap": {"name": "coredns"}}],
            "containers": [{
                "name": "coredns", "image": COREDNS, "imagePullPolicy": "IfNotPresent",
                "args": ["-conf", "/etc/coredns/Corefile"],
                "ports": [{"containerPort": 53, "protocol": "UDP", "name": "dns"},
                          {"containerPort": 53, "protocol": "TCP", "name": "dns-tcp"}],
                "securityContext": {"allowPrivilegeEscalation": False},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181},
                                   "periodSeconds": 1},
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/coredns"}]}]}
        objs = [
            {"apiVersion": "v1", "kind": "ServiceAccount",
             "metadata": {"name": "coredns", "namespace": "kube-system"}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": "system:coredns"},
             "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods",
                                                         "namespaces"],
                        "verbs": ["list", "watch"]},
                       {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                        "verbs": ["list", "watch"]}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "system:coredns"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "system:coredns"},
             "subjects": [{"kind": "ServiceAccount", "name": "coredns",
                           "namespace": "kube-system"}]},
            {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "coredns", "namespace": "kube-system"},
             "data": {"Corefile": corefile}},
            {"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "coredns", "namespace": "kube-system",
                          "labels": {"k8s-app": "kube-dns"}},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"k8s-app": "kube-dns"}},
                      "template": {"metadata": {"labels": {"k8s-app": "kube-dns"}},
                                   "spec": pod}}},
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "kube-dns", "namespace": "kube-system",
                          "labels": {"k8s-app": "kube-dns"}},
             "spec": {"clusterIP": DNS_IP, "selector": {"k8s-app": "kube-dns"},
                      "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
        ]
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": objs}))
        self.kubectl("rollout", "status", "-n", "kube-system", "deployment/coredns",
                     "--timeout=%ds" % timeout, timeout=timeout + 30)
        # Available is the pod's readiness; kube-proxy writes the rules to it
        # only after the EndpointSlice controller has seen the same, so a pod
        # started now could ask a ClusterIP that leads nowhere yet. Wait for
        # the host itself to be answered through the ClusterIP.
        self.wait_for(lambda: self._check_alive() or
                      dns_lookup(DNS_IP, "kubernetes.default.svc.cluster.local") ==
                      cl.API_SERVICE_IP, timeout, "CoreDNS answering on %s" % DNS_IP,
                      interval=0.3)

    # --- helpers for tests ------------------------------------------------------
    def pod_phase(self, ns, name):
        r = self.kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.phase}",
                         check=False)
        return r.stdout.strip() if r.returncode == 0 else ""

    def run_pod(self, ns, name, command, image=BUSYBOX, timeout=60, **spec):
        """Runs a one-shot pod (restartPolicy Never) to its end; returns
        (phase, logs)."""
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
               "spec": dict({"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                             "containers": [{"name": "main", "image": image,
                                             "imagePullPolicy": "IfNotPresent",
                                             "command": command}]}, **spec)}
        self.create_json(pod)
        phase = self.wait_for(lambda: self.pod_phase(ns, name) in ("Succeeded", "Failed")
                              and self.pod_phase(ns, name), timeout,
                              "pod %s/%s to finish" % (ns, name), interval=0.3)
        logs = self.kubectl("logs", "-n", ns, name, "--all-containers", check=False).stdout
        return phase, logs

    def import_images(self, images_dir):
        """Every archive in images_dir into the kubelet's containerd namespace
        (what the node does at its start; tests with images of their own, such
        as the conformance apps, call it later)."""
        for tar in sorted(glob.glob(os.path.join(images_dir, "*.tar"))):
            self.ctr("-n", "k8s.io", "images", "import", tar)

    def ctr(self, *args, check=True):
        return sh(os.path.join(self.bin, "ctr"), "--address", self.sock, *args, check=check)

    def _proc(self, name):
        for n, p, _ in self.procs:
            if n == name:
                return p
        return None

    # --- teardown --------------------------------------------------------------
    def stop(self, release_lock=True):
        """release_lock=False keeps LOCK (a test checks the host before
        another node may start); release_lock() lets it go."""
        t = time.monotonic()
        try:
            # The kubelet first, so it does not restart what goes away next;
            # then containerd: its namespace's end kills every container.
            for name in ("kubelet", "containerd"):
                p = self._proc(name)
                if p and p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
                    try:
                        p.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait(timeout=10)
            super().stop(remove_dir=False)  # host_cleanup removes it after the unmounts
            if os.environ.get("WEFT_E2E_KEEP"):
                unmount_under(self.dir)
                host_cleanup(self.bin, [])
            else:
                host_cleanup(self.bin, [self.dir])
        finally:
            self.timings["stop"] = time.monotonic() - t
            if release_lock:
                self.release_lock()

    def release_lock(self):
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


CONTAINERD_TOML = """\
version = 3
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{pause}"
[plugins."io.containerd.cri.v1.runtime"]
  disable_apparmor = true
  # root here lacks CAP_SYS_RESOURCE: no container may get an oom_score_adj
  # below containerd's own (runc fails every sandbox otherwise)
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      runtime_path = "{shim}"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
        Root = "{state}/runc"
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{cni_bin}"]
    conf_dir = "{cni}"
    max_conf_num = 1
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
"""


def main():
    bindir = node_bin(build=bool(os.environ.get("WEFT_E2E_BUILD")))
    if not bindir:
        raise SystemExit("node not built: run tests/e2e/setup-node.sh")
    weft_bin = os.path.abspath(os.environ.get("WEFT_BIN") or os.path.join(REPO, "build", "bin"))
    # WEFT_E2E_NODE_IMAGES: archives built before (test_node.py), else built here
    given = os.environ.get("WEFT_E2E_NODE_IMAGES")
    images = given or cl.make_tempdir("images")
    try:
        if not given:
            build_images(images, weft_bin, os.path.join(bindir, "coredns"))
        c = NodeCluster(bindir, images).start(timeout=180)
    except BaseException:
        if not given:
            shutil.rmtree(images, ignore_errors=True)
        raise
    try:
        print("KUBECONFIG=%s" % c.kubeconfig, flush=True)
        print("timings: %s" % json.dumps({k: round(v, 1) for k, v in c.timings.items()}),
              flush=True)
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGTERM])
        signal.sigwait([signal.SIGINT, signal.SIGTERM])
    finally:
        c.stop()
        if not given:
            shutil.rmtree(images, ignore_errors=True)


if __name__ == "__main__":
    main()
