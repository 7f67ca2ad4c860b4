# SPDX-License-Identifier: Apache-2.0
"""The real Prometheus from Debian's `prometheus` package, for tests:
promtool's check of an exposition, and a server with its own configuration
and data directory in a temporary directory, listening on loopback of the
host (network namespace) it runs in, scraping the given targets every
second. Stopped with SIGTERM and checked to exit 0 (procs.stop_cleanly),
also when the test fails.

    with promenv.Prometheus(net.node, ["198.18.0.2:15020"], workdir) as prom:
    # or targets with labels: [("198.18.0.2:15020", {"namespace": "shop", "pod": "web-0"})]
    # or serving HTTPS (--web.config.file's tls_server_config): tls=(cert, key, ca)
        prom.wait_scraped()
        prom.value('sum(weft_proxy_ready)')   # a float, or None: no sample
"""
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.parse
import urllib.request

import netns
import procs

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PORT = 19090  # inside the host's namespace; each test has its own


def available():
    return os.access(PROMETHEUS, os.X_OK) and os.access(PROMTOOL, os.X_OK)


def check_metrics(text):
    """promtool check metrics over an exposition: (ok, what it said)."""
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    return r.returncode == 0, (r.stdout + r.stderr).strip()


class Prometheus:
    def __init__(self, host, targets, workdir, interval="1s", job="weft-proxy", tls=None):
        self.host, self.job, self.tls = host, job, tls
        self.dir = os.path.join(workdir, f"prometheus-{host.name}")
        os.makedirs(os.path.join(self.dir, "data"))
        self.config = os.path.join(self.dir, "prometheus.yml")
        with open(self.config, "w") as f:
            json.dump({"global": {"scrape_interval": interval, "scrape_timeout": interval,
                                  "evaluation_interval": interval},
                       "scrape_configs": [{"job_name": job, "metrics_path": "/metrics",
                                           "static_configs": [self._static(t) for t in targets]}]}, f)
        self.log = os.path.join(self.dir, "prometheus.log")
        self.proc = None
        self.web_config = None
        if tls:
            self.web_config = os.path.join(self.dir, "web.yml")
            with open(self.web_config, "w") as f:
                json.dump({"tls_server_config": {"cert_file": tls[0], "key_file": tls[1]}}, f)

    @staticmethod
    def _static(target):
        """ "host:port", or ("host:port", {label: value}): labels Prometheus
        attaches to every series of that target (as relabelled Kubernetes
        pod discovery gives namespace and pod)."""
        if isinstance(target, str):
            return {"targets": [target]}
        return {"targets": [target[0]], "labels": dict(target[1])}

    def __enter__(self):
        with open(self.log, "wb") as log:
            self.proc = self.host.popen([PROMETHEUS, f"--config.file={self.config}",
                                         f"--storage.tsdb.path={self.dir}/data",
                                         f"--web.listen-address=127.0.0.1:{PORT}",
                                         "--storage.tsdb.retention.time=1h",
                                         *([f"--web.config.file={self.web_config}"] if self.web_config else [])],
                                        stdout=subprocess.DEVNULL, stderr=log)
        try:
            self._wait(lambda: self._get("/-/ready")[0] == 200, 30, "ready")
        except Exception:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.host.checked(self.proc)
            proc, self.proc = self.proc, None
            procs.stop_cleanly(proc, self.log, timeout=30)

    def _get(self, path):
        with netns.inside(self.host.netns):
            ctx = ssl.create_default_context(cafile=self.tls[2]) if self.tls else None
            try:
                with urllib.request.urlopen(self.url() + path, timeout=5, context=ctx) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
            except OSError as e:
                return 0, str(e)

    def _wait(self, cond, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited {self.proc.returncode}:\n" + procs.read_log(self.log)[-3000:])
            if cond():
                return
            time.sleep(0.2)
        raise AssertionError(f"prometheus not {what} after {timeout}s:\n" + procs.read_log(self.log)[-3000:])

    def query(self, promql, at=None):
        """The result list of an instant query (/api/v1/query), at Unix
        time `at` (default now)."""
        args = {"query": promql, **({"time": str(at)} if at is not None else {})}
        status, body = self._get("/api/v1/query?" + urllib.parse.urlencode(args))
        assert status == 200, f"{promql}: HTTP {status}: {body[:500]}"
        doc = json.loads(body)
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    def value(self, promql, at=None):
        """The single sample's value of an instant query, None without one."""
        res = self.query(promql, at)
        assert len(res) <= 1, f"{promql}: {len(res)} series: {res}"
        return float(res[0]["value"][1]) if res else None

    def wait_value(self, promql, want, timeout=15):
        """value(promql) once it equals `want` (a scrape or two later), or
        its last value after `timeout` seconds."""
        end = time.monotonic() + timeout
        v = self.value(promql)
        while v != want and time.monotonic() < end:
            time.sleep(0.25)
            v = self.value(promql)
        return v

    def wait_scraped(self, timeout=15):
        """Until every target has been scraped successfully once."""
        self._wait(lambda: self.value(f'count(up{{job="{self.job}"}} == 1) == bool count(up{{job="{self.job}"}})') == 1,
                   timeout, "scraping its targets")

    def url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{PORT}"
