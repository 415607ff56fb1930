"""Leader election without split brain: a leader whose connection to the API server stalls
stops acting before the standby takes over (client-go's renew deadline and locally observed
lease expiry)."""

import datetime
import json
import pathlib
import socket
import threading
import time
import urllib.parse

import yaml

from conftest import CLUSTER, E2E_DIR, Process, free_port, kubectl, switchyard_binary, wait_until

LEASE_FLAGS = ["--lease-duration", "4s", "--lease-renew-every", "1s"]


class FreezableProxy:
    """A TCP proxy on loopback in front of the API server. `freeze()` keeps accepting and
    keeps every connection open, but forwards nothing more: the leader's calls hang, as
    behind a stalled network path."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.frozen = threading.Event()
        self.closed = threading.Event()
        self.sockets = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.frozen.is_set():
                continue  # accepted, never connected upstream: the caller waits
            server = socket.create_connection(self.upstream)
            self.sockets.append(server)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            # While frozen, bytes are held, not forwarded: requests and answers hang.
            while self.frozen.is_set() and not self.closed.is_set():
                time.sleep(0.05)
            if not data or self.closed.is_set():
                return
            try:
                dst.sendall(data)
            except OSError:
                return

    def freeze(self):
        self.frozen.set()

    def close(self):
        self.closed.set()
        for s in [self.listener, *self.sockets]:
            try:
                s.close()
            except OSError:
                pass


def kubeconfig_via(port):
    cfg = yaml.safe_load(pathlib.Path(CLUSTER["KUBECONFIG"]).read_text())
    for c in cfg["clusters"]:
        # Same address (the certificate names 127.0.0.1), the proxy's port.
        c["cluster"]["server"] = f"https://127.0.0.1:{port}"
    path = E2E_DIR / f"via-proxy-{port}.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def start(name, namespace, kubeconfig=None):
    args = [switchyard_binary(), "--log-json", "controller", "--metrics-addr", f"127.0.0.1:{free_port()}",
            "--lease-namespace", namespace, "--identity", name, *LEASE_FLAGS]
    return Process(name, args, env={"KUBECONFIG": kubeconfig} if kubeconfig else None)


def log_time(proc, text):
    """When `proc` first logged a message containing `text` (its own clock), or None."""
    for line in proc.output().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if text in entry.get("message", ""):
            return datetime.datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
    return None


def holder(namespace):
    lease = kubectl("get", "lease", "switchyard-controller", "-o", "json", namespace=namespace, check=False)
    return lease.returncode == 0 and json.loads(lease.stdout)["spec"].get("holderIdentity")


def test_a_stalled_leader_stops_acting_before_the_standby_leads(crds, namespace):
    api = urllib.parse.urlparse(yaml.safe_load(pathlib.Path(CLUSTER["KUBECONFIG"]).read_text())
                                ["clusters"][0]["cluster"]["server"])
    proxy = FreezableProxy((api.hostname, api.port))
    leader = start("ctl-stalled", namespace, kubeconfig_via(proxy.port))
    standby = None
    try:
        wait_until(lambda: holder(namespace) == "ctl-stalled", timeout=30, what="the proxied replica to lead")
        standby = start("ctl-standby", namespace)
        wait_until(lambda: log_time(standby, "standing by"), timeout=30, what="the standby to stand by")
        time.sleep(2)  # a few renewals through the proxy

        proxy.freeze()
        frozen_at = datetime.datetime.now(datetime.timezone.utc)
        wait_until(lambda: holder(namespace) == "ctl-standby", timeout=30, what="the standby to take the lease")
        took_over = wait_until(lambda: log_time(standby, "became leader"), timeout=10, what="standby's log")

        stopped = log_time(leader, "lost leadership")
        assert stopped is not None, f"the stalled leader never stopped acting:\n{leader.output()[-3000:]}"
        assert frozen_at < stopped < took_over, (frozen_at, stopped, took_over)
        # It exits (and would be restarted) rather than linger as a second writer.
        wait_until(lambda: leader.proc.poll() is not None, timeout=10, what="the stalled leader to exit")
        assert leader.proc.returncode != 0
        print(f"stalled at {frozen_at:%T.%f}, old leader stopped {(stopped - frozen_at).total_seconds():.2f}s "
              f"later, standby led {(took_over - frozen_at).total_seconds():.2f}s later")
    finally:
        proxy.close()
        leader.stop()
        if standby:
            standby.stop()
