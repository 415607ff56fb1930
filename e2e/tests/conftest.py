"""Fixtures for end-to-end tests against the real local cluster started by e2e/cluster/up.sh.

Each test gets its own namespace; when a test fails, the state of the Switchyard objects,
pods and events in it is printed, so a CI log explains the failure on its own.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
E2E_DIR = pathlib.Path(os.environ.get("SWITCHYARD_E2E_DIR", REPO / ".e2e"))


def _cluster_env():
    env_file = E2E_DIR / "cluster.env"
    if not env_file.exists():
        pytest.exit(f"no local cluster: {env_file} is missing; run `bash e2e/cluster/up.sh` first", 2)
    return dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)


CLUSTER = _cluster_env()
os.environ["KUBECONFIG"] = CLUSTER["KUBECONFIG"]


def switchyard_binary():
    if os.environ.get("SWITCHYARD_BINARY"):
        return pathlib.Path(os.environ["SWITCHYARD_BINARY"])
    target = os.environ.get("CARGO_TARGET_DIR", REPO / "target")
    path = pathlib.Path(target) / "debug" / "switchyard"
    if not path.exists():
        pytest.exit(f"{path} is missing; run `cargo build` first", 2)
    return path


def kubectl(*args, input=None, check=True, namespace=None):
    """Runs kubectl against the local cluster and returns the completed process."""
    cmd = ["kubectl"]
    if namespace:
        cmd += ["-n", namespace]
    cmd += list(args)
    proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


def kubectl_json(*args, namespace=None):
    return json.loads(kubectl(*args, "-o", "json", namespace=namespace).stdout)


def wait_until(predicate, timeout=60.0, interval=0.25, what="condition"):
    """Polls `predicate` until it returns something truthy, and returns that."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def condition(obj, type_):
    for c in (obj.get("status") or {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A process started for a test. Its PID file sits beside the cluster's, so
    `e2e/cluster/down.sh` stops it even if the test run is interrupted."""

    def __init__(self, name, args, env=None):
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.log_path = E2E_DIR / "logs" / f"{self.name}.log"
        self.pid_path = E2E_DIR / "pids" / f"{self.name}.pid"
        self.args, self.env = [str(a) for a in args], {**os.environ, **(env or {})}
        self.log = open(self.log_path, "w")
        self._spawn()

    def _spawn(self):
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
        self.pid_path.write_text(str(self.proc.pid))

    def restart(self, sig=signal.SIGTERM):
        """Stops the process (SIGKILL simulates a crash) and starts it again, same arguments."""
        self.proc.send_signal(sig)
        self.proc.wait(15)
        self._spawn()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.pid_path.unlink(missing_ok=True)
        self.log.close()
        return self.proc.returncode

    def output(self):
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def session_lock(name):
    """Serialises session-wide setup across pytest-xdist workers: each worker runs the
    session fixtures itself, and two `kubectl apply`s of one object at once can conflict."""
    path = E2E_DIR / "locks" / f"{name}.lock"
    path.parent.mkdir(exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def alive(pid):
    """Whether a process runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        state = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class SharedProcess:
    """A process every pytest-xdist worker shares: the session's controller. Two controllers
    would split the work by their Lease (only one leads), so a test watching "the" controller's
    metrics or restarting it must reach the one that acts. The first worker to need it starts
    it in a session of its own; the others find it by its state file. Its PID file sits beside
    the cluster's, so `down.sh` stops it after the last phase; any worker may restart it."""

    def __init__(self, name, args, env, url):
        self.name, self.args, self.env, self.url = name, [str(a) for a in args], env, url
        self.log_path = E2E_DIR / "logs" / f"shared-{name}.log"
        self.pid_path = E2E_DIR / "pids" / f"shared-{name}.pid"
        self.child = None  # the Popen, in the worker that started it (to reap it)

    @classmethod
    def attach_or_start(cls, name, make_args, env):
        """`make_args(port)`: the command line for a process serving on `port`."""
        state = E2E_DIR / "shared" / f"{name}.json"
        state.parent.mkdir(exist_ok=True)
        with session_lock(f"shared-{name}"):
            if state.exists():
                saved = json.loads(state.read_text())
                shared = cls(name, saved["args"], {**os.environ, **env}, saved["url"])
                if shared.running():
                    return shared
            else:
                port = free_port()
                shared = cls(name, make_args(port), {**os.environ, **env}, f"http://127.0.0.1:{port}")
                state.write_text(json.dumps({"args": shared.args, "url": shared.url}))
            shared.spawn()
            return shared

    def pid(self):
        try:
            return int(self.pid_path.read_text())
        except (OSError, ValueError):
            return None

    def running(self):
        pid = self.pid()
        return pid is not None and alive(pid)

    def spawn(self):
        with open(self.log_path, "a") as log:
            self.child = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)
        self.pid_path.write_text(str(self.child.pid))

    def restart(self, sig=signal.SIGTERM):
        """Stops the process (SIGKILL simulates a crash) and starts it again, same arguments."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            wait_until(lambda: not alive(pid), timeout=15, what=f"{self.name} (pid {pid}) to exit")
        if self.child is not None and self.child.pid == pid:
            self.child.wait()
        self.spawn()

    def output(self):
        return self.log_path.read_text(errors="replace")

    @property
    def proc(self):
        return _SharedPopen(self)


class _SharedPopen:
    """The parts of Popen the tests use (pid, poll, send_signal, wait), for a shared process
    that may be another worker's child."""

    def __init__(self, shared):
        self.shared = shared
        self.returncode = None

    @property
    def pid(self):
        return self.shared.pid()

    def _reap(self):
        child = self.shared.child
        if child is not None and child.pid == self.pid:
            self.returncode = child.wait()
        elif self.returncode is None:
            self.returncode = -1  # not ours to reap: its status is unknown here

    def poll(self):
        if self.shared.running():
            return None
        self._reap()
        return self.returncode

    def send_signal(self, sig):
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout=15):
        pid = self.pid
        wait_until(lambda: not alive(pid), timeout=timeout, interval=0.05, what=f"pid {pid} to exit")
        self._reap()
        return self.returncode


@pytest.fixture(scope="session")
def crds():
    with session_lock("crds"):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "crd/inferencebackends.switchyard.dev",
            "crd/modelroutes.switchyard.dev", "crd/tenants.switchyard.dev", "--timeout=60s")
    # Discovery must list the new kinds before kubectl can use them by short name.
    wait_until(lambda: kubectl("get", "mr,tenants", "-A", check=False).returncode == 0,
               what="ModelRoute and Tenant discovery")


# Short timings so that stalls and leader hand-overs happen within a test's patience.
CONTROLLER_FLAGS = ["--unschedulable-grace", "3s", "--lease-duration", "4s", "--lease-renew-every", "1s",
                    "--prometheus-url", CLUSTER["PROMETHEUS_URL"]]
SYSTEM_NAMESPACE = "switchyard-system"


@pytest.fixture(scope="session")
def rbac(crds):
    """Installs the Helm chart's ServiceAccounts and RBAC, and returns kubeconfigs that act
    as those accounts, so the controller and gateway run here with exactly the permissions
    the chart grants them in production."""
    rendered = subprocess.run(
        [CLUSTER["HELM"], "template", "switchyard", str(REPO / "charts" / "switchyard"),
         "--namespace", SYSTEM_NAMESPACE, "--kube-version", "1.33.0",
         "--show-only", "templates/serviceaccounts.yaml", "--show-only", "templates/rbac.yaml"],
        capture_output=True, text=True, check=True).stdout
    # Owned by the release `switchyard` in switchyard-system as far as Helm can tell, so that a
    # `helm install --dry-run` of that release (the chart tests read its NOTES) passes Helm's
    # ownership check of the objects it would create.
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    for d in docs:
        d["metadata"].setdefault("annotations", {}).update({
            "meta.helm.sh/release-name": "switchyard", "meta.helm.sh/release-namespace": SYSTEM_NAMESPACE})
    admin = yaml.safe_load(pathlib.Path(CLUSTER["KUBECONFIG"]).read_text())
    configs = {}
    with session_lock("rbac"):
        kubectl("create", "namespace", SYSTEM_NAMESPACE, check=False)
        kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in docs))
        for component in ("controller", "gateway"):
            cfg = json.loads(json.dumps(admin))
            cfg["users"][0]["user"]["as"] = f"system:serviceaccount:{SYSTEM_NAMESPACE}:switchyard-{component}"
            path = E2E_DIR / f"{component}.kubeconfig"
            path.write_text(yaml.safe_dump(cfg))
            configs[component] = str(path)
    return configs


def controller_args(port, lease_namespace=SYSTEM_NAMESPACE, extra=()):
    """A test controller's command line: metrics on loopback `port`, the suite's timings."""
    return [switchyard_binary(), "controller", "--metrics-addr", f"127.0.0.1:{port}",
            "--lease-namespace", lease_namespace, *CONTROLLER_FLAGS, *extra]


def start_controller(lease_namespace=SYSTEM_NAMESPACE, name="controller", kubeconfig=None, extra=(), env=None):
    kubectl("create", "namespace", lease_namespace, check=False)
    port = free_port()
    proc = Process(name, controller_args(port, lease_namespace, extra),
                   env={**({"KUBECONFIG": kubeconfig} if kubeconfig else {}), **(env or {})})
    proc.url = f"http://127.0.0.1:{port}"
    return proc


def _wait_ready(proc):
    def ready():
        try:
            return requests.get(f"{proc.url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return not proc.running() and pytest.fail(f"controller exited:\n{proc.output()[-5000:]}")

    wait_until(ready, timeout=30, what="controller /readyz")


@pytest.fixture(scope="session")
def shared_controller(crds, rbac):
    """The session's controller, one for every xdist worker (see SharedProcess), with the
    chart's RBAC and short timings."""
    kubectl("create", "namespace", SYSTEM_NAMESPACE, check=False)
    proc = SharedProcess.attach_or_start(
        "controller",
        controller_args,
        env={"KUBECONFIG": rbac["controller"]})
    _wait_ready(proc)
    # Prometheus scrapes the session's controller too: its decisions (phase, step, weights,
    # verdicts) are series that dashboards and `kubectl switchyard report` read.
    add_scrape_target("controller", proc.url.removeprefix("http://"))
    return proc


# What the controller logs when it exits because it could not renew its Lease in time.
LOST_LEADERSHIP = "lost leadership; stopped reconciling, exiting"


@pytest.fixture
def controller(shared_controller):
    """The session's controller, started again before a test if it exited after losing its
    Lease, as the kubelet restarts the Deployment's pod: a leader that cannot renew within
    the renew deadline (2.7 s of a 4 s lease here; an API server slowed by a busy 2-core
    machine can take that long) exits by design rather than risk two writers. Without this,
    one slow renewal took the controller away from every later test of the run. Any other
    exit is a crash and fails the test with the controller's log."""
    proc = shared_controller
    if proc.running():
        return proc
    # A test restarting it (SIGKILL, then the same command line) is back within seconds.
    try:
        wait_until(proc.running, timeout=10, what="the session's controller to be running")
    except AssertionError:
        with session_lock("shared-controller"):
            if not proc.running():
                # The log of its last run: each start appends, beginning with "listening".
                log = proc.output().rsplit(" listening ", 1)[-1]
                if LOST_LEADERSHIP not in log:
                    pytest.fail(f"the session's controller exited:\n{log[-5000:]}")
                print("the session's controller had lost its Lease and exited; started again")
                proc.spawn()
    _wait_ready(proc)
    return proc


@pytest.fixture(scope="session")
def image():
    """The OCI image, built by image/build.sh from the suite's (debug) binary, and its root
    filesystem unpacked by umoci the way a runtime unpacks it."""
    out = E2E_DIR / "image"
    tag = "e2e"
    bundle = out / "bundle"
    binary = switchyard_binary()
    built_from = f"{binary}:{binary.stat().st_mtime_ns}:{binary.stat().st_size}"
    stamp = out / "built-from"
    # Every xdist worker asks for it; the first builds it, the rest find it built.
    with session_lock("image"):
        if not stamp.exists() or stamp.read_text() != built_from:
            subprocess.run(["bash", str(REPO / "image" / "build.sh"), "--binary", str(binary),
                            "--out", str(out), "--tag", tag], check=True, capture_output=True)
            subprocess.run(["rm", "-rf", str(bundle)], check=True)
            subprocess.run(["umoci", "unpack", "--image", f"{out / 'layout'}:{tag}", str(bundle)],
                           check=True, capture_output=True)
            stamp.write_text(built_from)
    return {"layout": out / "layout", "tag": tag, "archive": out / f"switchyard-{tag}.oci.tar",
            "rootfs": bundle / "rootfs", "sbom": out / "sbom.spdx.json", "ref": f"switchyard:{tag}"}


def load_image(image):
    """Makes the image runnable by the cluster's pods (as `kind load` does): an entry in the
    pod agent's index with its root filesystem and the parts of its OCI config a runtime
    uses. Pods naming the image's reference then run it (e2e/cluster/pod_runtime.py)."""
    config = json.loads(subprocess.run(
        ["skopeo", "inspect", "--config", f"oci:{image['layout']}:{image['tag']}"],
        check=True, capture_output=True, text=True).stdout)["config"]
    uid, _, gid = config.get("User", "0").partition(":")
    index = pathlib.Path(CLUSTER["IMAGES_INDEX"])
    index.parent.mkdir(parents=True, exist_ok=True)
    with open(index.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        entries = json.loads(index.read_text()) if index.exists() else {}
        entries[image["ref"]] = {"rootfs": str(image["rootfs"]), "entrypoint": config.get("Entrypoint") or [],
                                 "cmd": config.get("Cmd") or [], "env": config.get("Env") or [],
                                 "uid": int(uid or 0), "gid": int(gid or uid or 0)}
        tmp = index.with_suffix(".tmp")
        tmp.write_text(json.dumps(entries, indent=1))
        tmp.rename(index)


def service_account_kubeconfig(account, namespace=SYSTEM_NAMESPACE, server=None, duration="1h"):
    """A kubeconfig holding a token from the TokenRequest API for a ServiceAccount, with the
    cluster's CA inline: what a pod's credentials amount to."""
    token = kubectl("create", "token", account, "-n", namespace, f"--duration={duration}").stdout.strip()
    admin = yaml.safe_load(kubectl("config", "view", "--raw", "--flatten", "--minify").stdout)
    cluster = admin["clusters"][0]["cluster"]
    if server:
        cluster["server"] = server
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "sa",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account}}]})


@pytest.fixture
def namespace(request):
    name = f"e2e-{request.node.name[:40].lower().replace('_', '-').strip('-')}-{uuid.uuid4().hex[:5]}"
    name = "".join(ch for ch in name if ch.isalnum() or ch == "-")[:63].rstrip("-")
    kubectl("create", "namespace", name)
    # The ServiceAccount admission plugin refuses pods until the namespace's default account exists.
    wait_until(lambda: kubectl("get", "serviceaccount", "default", namespace=name, check=False).returncode == 0,
               what="default ServiceAccount")
    yield name
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        dump = kubectl("get", "inferencebackends,modelroutes,deployments,pods,events", "-o", "wide",
                       namespace=name, check=False)
        print(f"\n--- state of namespace {name} ---\n{dump.stdout}{dump.stderr}")
        dump = kubectl("get", "inferencebackends,modelroutes", "-o", "yaml", namespace=name, check=False)
        print(dump.stdout)
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_configure(config):
    config.addinivalue_line("markers", "chaos: disrupts the whole cluster (API server, etcd, the controller's "
                            "lease); run alone, in e2e/test.sh's serial phase")
    config.addinivalue_line("markers", "serial: measures something cluster-wide that scenarios beside it would "
                            "disturb (the API server's request counters); runs in e2e/test.sh's serial phase")


# Figures reach the run's summary through the test reports, which pytest-xdist sends from its
# workers to the process that prints the summary.
REPORTED_FIGURES = []
_figures_sent = 0


def pytest_terminal_summary(terminalreporter):
    """The figures scenarios print under load (requests, failures, durations), repeated at the
    end so a CI log shows them for passing tests too."""
    if REPORTED_FIGURES:
        terminalreporter.section("figures")
        for line in REPORTED_FIGURES:
            terminalreporter.line(line)


def pytest_runtest_logreport(report):
    for name, value in report.user_properties:
        if name == "figures":
            REPORTED_FIGURES.extend(value)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    global _figures_sent
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
    if rep.when == "teardown":
        from traffic import FIGURES
        if len(FIGURES) > _figures_sent:
            rep.user_properties.append(("figures", FIGURES[_figures_sent:]))
            _figures_sent = len(FIGURES)


MOCK = REPO / "e2e" / "mock" / "mock_provider.py"


class Mock:
    """A mock provider on loopback, with its control API."""

    def __init__(self, dialect, key=None, model=None, tls=None, host="127.0.0.1"):
        """`tls`: (certificate, key, CA) PEM paths: the mock serves https, and its control
        API is called verifying that CA. `host`: CLUSTER["POD_HOST_ADDR"] for a provider that
        pods (the chart's gateway) can reach."""
        port_file = E2E_DIR / f"mock-{uuid.uuid4().hex[:8]}.port"
        args = [sys.executable, MOCK, "--dialect", dialect, "--host", host, "--port", "0",
                "--port-file", port_file, "--quiet"]
        if key:
            args += ["--require-key", key]
        if model:
            args += ["--model", model]
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        self.proc = Process(f"mock-{dialect}", args)
        wait_until(lambda: port_file.exists() and port_file.read_text().strip(), timeout=15, what="mock port")
        self.port = int(port_file.read_text())
        port_file.unlink()
        self.url = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.verify = str(tls[2]) if tls else True
        self.dialect = dialect

    def faults(self, **config):
        r = requests.post(f"{self.url}/_mock/faults", json=config, timeout=5, verify=self.verify)
        assert r.status_code == 200, r.text
        return r.json()

    def clear_faults(self):
        requests.delete(f"{self.url}/_mock/faults", timeout=5, verify=self.verify)

    def stats(self):
        return requests.get(f"{self.url}/_mock/stats", timeout=5, verify=self.verify).json()

    def chat_requests(self):
        path = "/v1/messages" if self.dialect == "anthropic" else "/v1/chat/completions"
        return self.stats()["by_path"].get(path, 0)

    def reset(self):
        requests.post(f"{self.url}/_mock/reset", timeout=5, verify=self.verify)

    def stop(self):
        self.proc.stop()


@pytest.fixture
def mocks():
    started = []

    def start(dialect, key=None, model=None, tls=None, host="127.0.0.1"):
        m = Mock(dialect, key, model, tls, host)
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


class Gateway:
    """A gateway process: `url` is the API applications call, `admin_url` serves /metrics,
    /healthz and /readyz, and `key` is the namespace's Tenant key its requests present."""

    def __init__(self, proc, url, admin_url, job, key):
        self.proc, self.url, self.admin_url, self.job, self.key = proc, url, admin_url, job, key
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def session(self):
        """A requests session presenting the tenant's key."""
        s = requests.Session()
        s.headers.update(self.headers)
        return s

    def post(self, path, **kw):
        return requests.post(f"{self.url}{path}", headers={**self.headers, **kw.pop("headers", {})},
                             timeout=kw.pop("timeout", 10), **kw)

    def get(self, path, **kw):
        return requests.get(f"{self.url}{path}", headers={**self.headers, **kw.pop("headers", {})},
                            timeout=kw.pop("timeout", 5), **kw)

    def metric(self, name, **labels):
        """The sum of the series on /metrics matching `labels` (0 when none); any order."""
        want = {k: str(v) for k, v in labels.items()}
        total = 0.0
        for line in requests.get(f"{self.admin_url}/metrics", timeout=2).text.splitlines():
            series, _, value = line.rpartition(" ")
            if series.split("{", 1)[0] != name:
                continue
            have = dict(LABEL.findall(series))
            if all(have.get(k) == v for k, v in want.items()):
                total += float(value)
        return total


LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


TENANT = "e2e-app"


def tenant_key(namespace):
    """The key of the namespace's e2e Tenant: fixed per namespace, so that every gateway a
    test starts there presents the same one."""
    return "sk-e2e-" + hashlib.sha256(namespace.encode()).hexdigest()[:24]


def ensure_tenant(namespace, key=None):
    """A Tenant whose key (in a Secret labelled as a tenant key) may use every route of the
    namespace; applied idempotently. Returns the key."""
    key = key or tenant_key(namespace)
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": f"{TENANT}-key", "labels": {"switchyard.dev/credential": "tenant-key"}},
         "stringData": {"key": key}},
        {"apiVersion": "switchyard.dev/v1alpha1", "kind": "Tenant", "metadata": {"name": TENANT},
         "spec": {"keys": [{"secretRef": {"name": f"{TENANT}-key", "key": "key"}}]}},
    ]}))
    return key


def start_gateway(kubeconfig, namespace, *extra, job=None, key=None, env=None):
    port, admin = free_port(), free_port()
    # Tests stop gateways often; only the replica scenarios need the shutdown delay (they pass
    # their own), the rest would wait it out at every teardown.
    delay = [] if "--shutdown-delay" in extra else ["--shutdown-delay", "0s"]
    key = None if "--auth=disabled" in extra else ensure_tenant(namespace, key)
    proc = Process("gateway", [switchyard_binary(), "gateway", "--listen-addr", f"127.0.0.1:{port}",
                               "--admin-addr", f"127.0.0.1:{admin}",
                               "--namespace", namespace, *delay, *extra], env={"KUBECONFIG": kubeconfig, **(env or {})})
    gw = Gateway(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin}",
                 job or f"gateway-{namespace}", key)

    def ready():
        try:
            if requests.get(f"{gw.admin_url}/readyz", timeout=1).status_code != 200:
                return False
            # Ready, and the tenant's key is in its table.
            return key is None or gw.get("/v1/models", timeout=1).status_code == 200
        except requests.RequestException:
            if proc.proc.poll() is not None:
                pytest.fail(f"gateway exited:\n{proc.output()}")
            return False

    wait_until(ready, timeout=30, what="gateway /readyz and the tenant's key accepted")
    # Prometheus scrapes every gateway a test starts, labelled with the test's namespace
    # (a test running several replicas names each one's job).
    add_scrape_target(gw.job, f"127.0.0.1:{admin}")
    return gw


def add_scrape_target(job, address):
    """Registers a scrape target with Prometheus; written whole, then renamed, because
    Prometheus may read the directory at any moment."""
    targets = E2E_DIR / "prometheus" / "targets"
    tmp = targets / f".{job}.json.tmp"
    tmp.write_text(json.dumps([{"targets": [address], "labels": {"component": job}}]))
    tmp.rename(targets / f"{job}.json")


@pytest.fixture
def gateway(crds, rbac, namespace):
    gw = start_gateway(rbac["gateway"], namespace)
    yield gw
    (E2E_DIR / "prometheus" / "targets" / f"{gw.job}.json").unlink(missing_ok=True)
    assert gw.proc.stop() == 0, f"gateway did not shut down cleanly:\n{gw.proc.output()}"
