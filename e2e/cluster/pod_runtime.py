"""Runs pods whose image was loaded into the local cluster, the way a kubelet and a container
runtime would, without a container engine.

kwok schedules pods and reports them Running with an IP; for a pod whose every container
image is in the loaded-image index ($E2E_DIR/images/index.json, written by the suite after it
builds and unpacks the image: `ref -> {rootfs, entrypoint, cmd, env, uid, gid}`), this:

- gives the pod a network namespace of its own, joined by a veth to the node's router (the
  shared pod namespace of netns.sh), with the pod's IP on the pod's end and a default route
  through a link-local gateway, so the pod's processes may bind 0.0.0.0 and every port, as
  in a real pod, and reach the host's side of the pod network ($POD_HOST_ADDR);
- gives each container a root filesystem: a hard-linked copy of the image's, plus the
  ServiceAccount volume a kubelet projects (a token from the TokenRequest API bound to the
  pod, the cluster's CA, the namespace) at /var/run/secrets/kubernetes.io/serviceaccount;
- runs the container's command (the image's entrypoint, or the pod's command, and the pod's
  args) chrooted there as the pod's user, with the image's environment, the pod's env
  (values, field references, Secret and ConfigMap keys) and KUBERNETES_SERVICE_HOST/PORT as
  the kubelet sets them; restarts it with back-off when it exits (restartPolicy Always);
- on the pod's deletion, sends SIGTERM, waits up to terminationGracePeriodSeconds, then
  kills, and removes the namespace and the filesystem.

Logs: $LOG_DIR/pods/NAMESPACE_POD_CONTAINER.log. Probes are not run: kwok reports the pod
Ready, and tests wait for the components' own /readyz by pod IP.
"""

import base64
import json
import os
import pathlib
import shutil
import signal
import subprocess
import threading
import time

E2E_DIR = pathlib.Path(os.environ["E2E_DIR"])
LOG_DIR = pathlib.Path(os.environ["LOG_DIR"])
PKI_DIR = pathlib.Path(os.environ["PKI_DIR"])
INDEX = E2E_DIR / "images" / "index.json"
PODS_DIR = E2E_DIR / "pod-rootfs"
ROUTER_NETNS = os.environ.get("SWITCHYARD_NETNS", "switchyard-pods")
PREFIX = os.environ.get("POD_NETNS_PREFIX", "swy-p-")
HOST_ADDR = os.environ["POD_HOST_ADDR"]
APISERVER_PORT = os.environ["APISERVER_PORT"]
# Every pod's default gateway, held by each host-side veth (as Calico's 169.254.1.1): the pod
# resolves it on its only link, and the router forwards from there.
GATEWAY = "169.254.1.1"
SA_DIR = "var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_LIFETIME = 3600
TOKEN_REFRESH = 600  # a kubelet refreshes at 80% of the lifetime; sooner costs nothing here
BACKOFF_MAX = 30.0
# `env -i` leaves no PATH to find it by.
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} [pod-runtime] {msg}", flush=True)


def sh(*args, check=True, input=None):
    proc = subprocess.run(args, capture_output=True, text=True, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


def loaded_images():
    try:
        return json.loads(INDEX.read_text())
    except (OSError, ValueError):
        return {}


def runnable(pod, images):
    containers = pod["spec"]["containers"]
    return bool(containers) and all(c["image"] in images for c in containers)


def remove_netns(name):
    """Kills what runs in a pod's namespace and deletes it; that deletes its veth end, and with
    it the peer and the route to the pod."""
    if name in sh("ip", "netns", "list", check=False).split():
        for pid in sh("ip", "netns", "pids", name, check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", name, check=False)


class Container:
    def __init__(self, pod, spec, image, rootfs, netns, env):
        self.pod, self.spec, self.image, self.rootfs, self.netns = pod, spec, image, rootfs, netns
        meta = pod["metadata"]
        self.log_path = LOG_DIR / "pods" / f'{meta["namespace"]}_{meta["name"]}_{spec["name"]}.log'
        self.env = env
        self.proc = None
        self.restarts = 0
        self.next_start = 0.0

    def argv(self):
        entry = self.spec.get("command") or self.image.get("entrypoint") or []
        args = self.spec.get("args") if "args" in self.spec or "command" in self.spec else self.image.get("cmd")
        return [*entry, *(args or [])]

    def user(self):
        ctx = {**(self.pod["spec"].get("securityContext") or {}), **(self.spec.get("securityContext") or {})}
        uid = ctx.get("runAsUser", self.image.get("uid", 0))
        gid = ctx.get("runAsGroup", self.image.get("gid", uid))
        return f"{uid}:{gid}"

    def start(self):
        argv = self.argv()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log_path, "a")
        out.write(f"--- {time.strftime('%H:%M:%S')} start #{self.restarts}: {' '.join(argv)}\n")
        out.flush()
        env_args = [f"{k}={v}" for k, v in self.env.items()]
        # chroot starts the command in the new root's /, the working directory of Switchyard's
        # image; an image with another one would need a runtime that can chdir for it.
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "env", "-i", *env_args,
             CHROOT, f"--userspec={self.user()}", str(self.rootfs), *argv],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()

    def tend(self):
        """Starts the container when it is not running and its back-off has passed."""
        if self.proc is not None and self.proc.poll() is None:
            return
        now = time.monotonic()
        if self.proc is not None:
            code = self.proc.returncode
            self.proc = None
            self.restarts += 1
            delay = min(BACKOFF_MAX, 2 ** min(self.restarts - 1, 5))
            self.next_start = now + delay
            meta = self.pod["metadata"]
            log(f'{meta["namespace"]}/{meta["name"]} {self.spec["name"]} exited ({code}); restart in {delay:.0f}s')
        if now >= self.next_start:
            self.start()

    def signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass


class Pod:
    def __init__(self, pod, images):
        self.obj = pod
        meta = pod["metadata"]
        self.uid, self.ip = meta["uid"], pod["status"]["podIP"]
        self.name = f'{meta["namespace"]}/{meta["name"]}'
        short = self.uid.replace("-", "")[:8]
        self.netns = f"{PREFIX}{short}"
        self.host_if = f"swyv-{short}"
        self.dir = PODS_DIR / self.uid
        self.token_written = 0.0
        self.stopping = False
        self.network()
        self.containers = []
        for spec in pod["spec"]["containers"]:
            image = images[spec["image"]]
            rootfs = self.dir / spec["name"]
            if rootfs.exists():
                shutil.rmtree(rootfs)
            rootfs.parent.mkdir(parents=True, exist_ok=True)
            # Hard links: a copy per container costs inodes, not the image's size.
            sh("cp", "-al", image["rootfs"], str(rootfs))
            self.containers.append(Container(pod, spec, image, rootfs, self.netns, self.environment(spec, image)))
        self.refresh_token()
        log(f"running {self.name} on {self.ip} in {self.netns}")

    def network(self):
        self.teardown_network()
        sh("ip", "netns", "add", self.netns)
        sh("ip", "-n", ROUTER_NETNS, "link", "add", self.host_if, "type", "veth", "peer", "name", "eth0",
           "netns", self.netns)
        sh("ip", "-n", ROUTER_NETNS, "addr", "add", f"{GATEWAY}/32", "dev", self.host_if)
        sh("ip", "-n", ROUTER_NETNS, "link", "set", self.host_if, "up")
        sh("ip", "-n", ROUTER_NETNS, "route", "replace", f"{self.ip}/32", "dev", self.host_if, "src", GATEWAY)
        sh("ip", "-n", self.netns, "link", "set", "lo", "up")
        sh("ip", "-n", self.netns, "addr", "add", f"{self.ip}/32", "dev", "eth0")
        sh("ip", "-n", self.netns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.netns, "route", "add", GATEWAY, "dev", "eth0", "scope", "link")
        sh("ip", "-n", self.netns, "route", "add", "default", "via", GATEWAY, "dev", "eth0")

    def teardown_network(self):
        remove_netns(self.netns)

    def field(self, path):
        meta, spec, status = self.obj["metadata"], self.obj["spec"], self.obj["status"]
        return {
            "metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
            "spec.nodeName": spec.get("nodeName", ""), "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.podIP": status.get("podIP", ""), "status.hostIP": status.get("hostIP", ""),
        }.get(path, "")

    def key_of(self, kind, ref):
        ns = self.obj["metadata"]["namespace"]
        out = sh("kubectl", "get", kind, ref["name"], "-n", ns, "-o", "json", check=False)
        data = (json.loads(out) if out else {}).get("data", {})
        value = data.get(ref["key"], "")
        return base64.b64decode(value).decode() if kind == "secret" and value else value

    def environment(self, spec, image):
        env = dict(e.split("=", 1) for e in image.get("env", []))
        env.update({"KUBERNETES_SERVICE_HOST": HOST_ADDR, "KUBERNETES_SERVICE_PORT": APISERVER_PORT,
                    "HOSTNAME": self.obj["metadata"]["name"]})
        for e in spec.get("env", []):
            source = e.get("valueFrom")
            if source is None:
                env[e["name"]] = e.get("value", "")
            elif "fieldRef" in source:
                env[e["name"]] = self.field(source["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in source:
                env[e["name"]] = self.key_of("secret", source["secretKeyRef"])
            elif "configMapKeyRef" in source:
                env[e["name"]] = self.key_of("configmap", source["configMapKeyRef"])
        return env

    def refresh_token(self):
        """The projected ServiceAccount volume: a pod-bound token, replaced well before it
        expires (kube clients reread the file)."""
        spec, meta = self.obj["spec"], self.obj["metadata"]
        if spec.get("automountServiceAccountToken") is False:
            return
        account = spec.get("serviceAccountName") or "default"
        token = sh("kubectl", "create", "token", account, "-n", meta["namespace"],
                   "--bound-object-kind", "Pod", "--bound-object-name", meta["name"],
                   "--bound-object-uid", meta["uid"], f"--duration={TOKEN_LIFETIME}s").strip()
        for c in self.containers:
            sa = c.rootfs / SA_DIR
            sa.mkdir(parents=True, exist_ok=True)
            for name, content in (("token", token), ("ca.crt", (PKI_DIR / "ca.crt").read_text()),
                                  ("namespace", meta["namespace"])):
                tmp = sa / f".{name}.tmp"
                tmp.write_text(content)
                tmp.chmod(0o644)
                tmp.rename(sa / name)
        self.token_written = time.monotonic()

    def tend(self):
        if self.stopping:
            return
        if time.monotonic() - self.token_written > TOKEN_REFRESH:
            try:
                self.refresh_token()
            except RuntimeError as err:
                log(f"{self.name}: token refresh failed: {err}")
        for c in self.containers:
            c.tend()

    def stop(self):
        """SIGTERM, the grace period, SIGKILL, then the namespace and files go; in a thread of
        its own, so one pod's grace period holds up no other pod."""
        self.stopping = True
        grace = self.obj["spec"].get("terminationGracePeriodSeconds", 30)

        def run():
            for c in self.containers:
                c.signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and any(c.proc and c.proc.poll() is None for c in self.containers):
                time.sleep(0.1)
            for c in self.containers:
                c.signal(signal.SIGKILL)
                if c.proc is not None:
                    c.proc.wait()
            self.teardown_network()
            shutil.rmtree(self.dir, ignore_errors=True)
            log(f"stopped {self.name}")

        thread = threading.Thread(target=run, daemon=False)
        thread.start()
        return thread


class Runtime:
    """The pods of loaded images, by uid."""

    def __init__(self):
        self.pods = {}
        self.failed = {}  # uid -> time of the last failed start, so a broken pod is retried slowly
        # A restarted agent adopts nothing: what an earlier one left is cleared.
        for ns in sh("ip", "netns", "list", check=False).split():
            if ns.startswith(PREFIX):
                remove_netns(ns)
        shutil.rmtree(PODS_DIR, ignore_errors=True)

    def sync(self, pods):
        images = loaded_images()
        live = {}
        for pod in pods:
            status, meta = pod.get("status") or {}, pod["metadata"]
            if (status.get("podIP") and status.get("phase") == "Running" and not meta.get("deletionTimestamp")
                    and not pod["spec"].get("hostNetwork") and runnable(pod, images)):
                live[meta["uid"]] = pod
        for uid in [u for u in self.pods if u not in live]:
            self.pods.pop(uid).stop()
        for uid, pod in live.items():
            if uid not in self.pods:
                if time.monotonic() - self.failed.get(uid, -1e9) < 5:
                    continue
                try:
                    self.pods[uid] = Pod(pod, images)
                    self.failed.pop(uid, None)
                except (RuntimeError, OSError, KeyError) as err:
                    log(f'cannot run {pod["metadata"]["namespace"]}/{pod["metadata"]["name"]}: {err}')
                    self.failed[uid] = time.monotonic()
            else:
                self.pods[uid].obj = pod
        for p in self.pods.values():
            p.tend()

    def shutdown(self):
        for t in [p.stop() for p in self.pods.values()]:
            t.join(15)
        self.pods.clear()
