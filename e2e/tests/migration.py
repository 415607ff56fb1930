"""Watching a ModelRoute's migration from a test: its status, the steps it goes through, its
Events, and the self-hosted pods it waits for. Shared by the migration and chaos tests."""

import json
import threading
import time
import uuid

from conftest import kubectl, kubectl_json, wait_until
from test_gateway_sdk import apply, route, served


def wait_slice_ready(namespace, service, pods, timeout=180):
    """The gateway routes to pods that are warmed up *and* ready in the Service's
    EndpointSlice; a busy controller-manager can publish the slice late."""
    def ready():
        slices = kubectl_json("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}",
                              namespace=namespace)["items"]
        return sum(1 for s in slices for e in s.get("endpoints") or []
                   if (e.get("conditions") or {}).get("ready")) >= pods
    wait_until(ready, timeout=timeout, interval=1, what=f"{pods} ready endpoints for {service}")


def status(namespace, name="chat"):
    return kubectl_json("get", "mr", name, namespace=namespace).get("status", {})


def watch_steps(namespace, until, timeout, name="chat"):
    """Polls the route, recording (time, phase, step, weights) whenever they change, until
    `until(status)` holds. Returns the record."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = status(namespace, name)
        key = (st.get("phase"), st.get("step"), json.dumps(st.get("weights")))
        if not seen or seen[-1][1:] != key:
            seen.append((time.monotonic(), *key))
        if until(st):
            return seen
        time.sleep(0.25)
    raise AssertionError(f"timed out; route went through {[s[1:] for s in seen]}\nlast status: {json.dumps(st)}")


def events(namespace, reason, name="chat"):
    out = kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name},reason={reason}",
                       namespace=namespace)
    return [e.get("note") or e.get("message") for e in out["items"]]


class StatusSampler:
    """Samples a route's status in the background, through API outages (a failed read is
    skipped), so a test can check afterwards that weights never jumped."""

    def __init__(self, namespace, name="chat", every=0.25):
        self.namespace, self.name, self.every = namespace, name, every
        self.samples = []  # (time, status)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.wait(self.every):
            r = kubectl("get", "mr", self.name, "-o", "json", "--request-timeout=2s", namespace=self.namespace,
                        check=False)
            if r.returncode == 0:
                self.samples.append((time.monotonic(), json.loads(r.stdout).get("status", {})))

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)
        return self.samples

    def steps(self):
        """The distinct (phase, step, weights) the route went through, in order."""
        seen = []
        for _, st in self.samples:
            key = (st.get("phase"), st.get("step"), json.dumps(st.get("weights")))
            if not seen or seen[-1] != key:
                seen.append(key)
        return seen

    def assert_no_jump(self):
        """Steps only ever advance one at a time: never skipped, never restarted."""
        steps = [st.get("step") for _, st in self.samples if st.get("step")]
        jumps = [(a, b) for a, b in zip(steps, steps[1:]) if b - a not in (0, 1)]
        assert not jumps, f"weights jumped {jumps}; route went through {self.steps()}"


def rollout(steps=(10, 50, 100), step_duration="10m", interval="5s", min_requests=10, **analysis):
    """A rollout for scenarios: by default it holds at each step (10 minutes) unless promoted,
    with analysis every 5 s so a failing target would be noticed within the test."""
    return {"steps": list(steps), "stepDuration": step_duration,
            "analysis": {"interval": interval, "minRequests": min_requests, "maxErrorRate": 0.02,
                         "failureLimit": 0, "maxHold": "10m", **analysis}}


def shares(weights):
    """A split as fractions per backend (those with a share), whatever the unit of `weights`
    (percent or thousandths)."""
    total = sum(w["weight"] for w in weights or [])
    return {w["name"]: round(w["weight"] / total, 4) for w in weights or [] if w["weight"]} if total else {}


def start_migration(namespace, gateway, stable, target, roll, fallback=()):
    """Puts route `chat` at `stable` (a list of (backend, weight)), waits until the gateway
    serves it, then changes spec to `target` and waits until the migration is at step 1.
    The backends must exist. Returns the route's status at step 1."""
    apply(namespace, route("chat", stable, fallback=fallback, rollout=roll))
    served(gateway, "chat")
    wait_until(lambda: status(namespace).get("phase") == "Stable", timeout=30, what="stable route")
    apply(namespace, route("chat", target, fallback=fallback, rollout=roll))
    watch_steps(namespace, lambda st: st.get("step") == 1, timeout=60)
    return status(namespace)


def command(namespace, action, name="chat", timeout=60):
    """Asks the controller for `action` (promote, pause, ...) the way `kubectl switchyard`
    does, by annotation, retrying the write while the API server cannot take it (as a GitOps
    tool or an operator would). Returns the command id the controller reports when done."""
    cid = f"test-{uuid.uuid4().hex[:8]}"

    def annotated():
        return kubectl("annotate", "--overwrite", "--request-timeout=5s", "mr", name,
                       f"switchyard.dev/command={action}", f"switchyard.dev/command-id={cid}",
                       namespace=namespace, check=False).returncode == 0
    wait_until(annotated, timeout=timeout, interval=0.5, what=f"the API server to accept {action}")
    return cid
