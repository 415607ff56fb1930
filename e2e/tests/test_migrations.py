"""Staged migrations end to end: a load generator sends steady traffic through the gateway,
Prometheus scrapes it, and the controller moves the split step by step, judging each step
by Prometheus and rolling back by itself. Durations are short so the scenarios fit a test
run; the logic is the same at 10 minutes a step."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from conftest import CLUSTER, E2E_DIR, kubectl, kubectl_json, wait_until
from migration import events, status, wait_slice_ready, watch_steps
from test_gateway_sdk import apply, backend, route, served
from traffic import Load


def rollout(step_duration="10s", interval="10s", min_requests=10, **analysis):
    return {"steps": [5, 20, 50, 100], "stepDuration": step_duration,
            "analysis": {"interval": interval, "minRequests": min_requests, "maxErrorRate": 0.02,
                         "failureLimit": 0, "maxHold": "10m", **analysis}}


def setup(namespace, gateway, mocks, target_fault=None, roll=None):
    stable, target = mocks("openai"), mocks("openai")
    if target_fault:
        target.faults(**target_fault)
    roll = roll or rollout()
    apply(namespace, backend("openai", stable, "gpt-4o"), backend("candidate", target, "llama"),
          route("chat", [("openai", 100)], rollout=roll))
    served(gateway, "chat")
    wait_until(lambda: status(namespace).get("phase") == "Stable", timeout=20, what="stable route")
    return stable, target, roll


def test_a_healthy_migration_to_the_self_hosted_llama_follows_every_step(controller, namespace, gateway, mocks):
    stable = mocks("openai")
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": {"name": "llama-h100"},
        "spec": {"selfHosted": {"runtime": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "replicas": 2,
                                "gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"}},
                 "warmup": {"requests": 20}}}))
    roll = rollout()
    apply(namespace, backend("openai", stable, "gpt-4o"), route("chat", [("openai", 100)], rollout=roll))
    served(gateway, "chat")
    wait_slice_ready(namespace, "llama-h100", 2)
    load = Load(gateway, "chat")
    try:
        time.sleep(3)
        apply(namespace, route("chat", [("llama-h100", 100)], rollout=roll))
        seen = watch_steps(namespace, lambda st: st.get("phase") == "Stable" and st.get("stable") == [
            {"name": "llama-h100", "weight": 100}], timeout=240)
    finally:
        load.stop()
    steps = [s for s in seen if s[1] == "Progressing" and s[2]]
    assert [s[2] for s in steps][:4] == [1, 2, 3, 4], [s[1:] for s in seen]
    # The share the load generator saw at each step is the step's weight (smooth weighted
    # round-robin makes it exact up to the window's edges). The test sees a step through
    # `kubectl get` polls, up to ~1 s after the gateway applied it, so a second is cut off
    # both edges: once, 0.65 s of the next step (100%) inside step 3's window read 0.533.
    for (start, _, step, _), nxt in zip(steps, steps[1:] + [seen[-1]]):
        expected = [0.05, 0.20, 0.50, 1.0][step - 1]
        share, n = load.share("llama-h100", start + 1.0, nxt[0] - 1.0)
        assert n >= 20 and abs(share - expected) <= 0.03, f"step {step}: {share:.3f} of {n}, expected {expected}"
    # The pods' own counters agree with what the gateway said it sent them.
    ib = kubectl_json("get", "ib", "llama-h100", namespace=namespace)
    served_by_pods = sum(requests.get(f'http://{e["address"]}/_mock/stats', timeout=2).json()["by_path"]
                         .get("/v1/chat/completions", 0) for e in ib["status"]["endpoints"])
    sent = sum(1 for _, b, code in load.answers if b == "llama-h100" and code == 200)
    assert served_by_pods == sent + 2 * 20, "every request the gateway routed reached a pod (plus warm-up)"
    kubectl("wait", "--for=condition=Ready", "mr/chat", "--timeout=5s", namespace=namespace)
    assert events(namespace, "Promoted")


def error_rate_in_prometheus(namespace, backend, window="10s"):
    """The controller's own error-rate query, as the test sees it in Prometheus."""
    sel = f'namespace="{namespace}",route="chat",backend=~"{backend}"'
    q = (f'sum(rate(switchyard_request_duration_seconds_count{{{sel},outcome=~"error|failover|unavailable"}}[{window}])) '
         f'/ sum(rate(switchyard_request_duration_seconds_count{{{sel},outcome!~"shadow|client_error"}}[{window}]))')
    r = requests.get(f'{CLUSTER["PROMETHEUS_URL"]}/api/v1/query', params={"query": q}, timeout=5).json()
    result = r["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def test_five_percent_errors_roll_back_at_the_first_step(controller, namespace, gateway, mocks):
    # Random (seeded) errors: a fixed cadence could beat in time with the analysis interval.
    stable, target, roll = setup(namespace, gateway, mocks, {"error_rate": 0.05, "seed": 11},
                                 rollout(step_duration="120s"))
    load = Load(gateway, "chat")
    breach = []
    stop = threading.Event()

    def watch_prometheus():
        while not stop.is_set():
            v = error_rate_in_prometheus(namespace, "candidate")
            if v is not None and v > 0.02 and not breach:
                breach.append(time.monotonic())
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_prometheus, daemon=True)
    try:
        time.sleep(3)
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        watcher.start()
        seen = watch_steps(namespace, lambda st: st.get("phase") == "RolledBack", timeout=120)
        rolled_back_at = time.monotonic()
    finally:
        stop.set()
        load.stop()
    assert max(s[2] or 0 for s in seen) == 1, "never beyond the first step"
    assert breach, "the breach never showed in Prometheus"
    assert rolled_back_at - breach[0] <= 2 * 10 + 1, f"rolled back {rolled_back_at - breach[0]:.1f}s after the breach"
    st = status(namespace)
    assert st["weights"] == [{"name": "openai", "weight": 1000}]
    stalled = next(c for c in st["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "RolledBack"
    assert "error-rate of candidate" in stalled["message"] and "> 0.02" in stalled["message"]
    check = next(c for c in st["lastAnalysis"]["checks"] if c["name"] == "error-rate")
    assert check["verdict"] == "Fail" and check["value"] > 0.02
    assert events(namespace, "AnalysisFailed") and events(namespace, "RolledBack")
    assert events(namespace, "MigrationStarted")


def test_a_latency_regression_without_errors_rolls_back_on_p95(controller, namespace, gateway, mocks):
    roll = rollout(step_duration="60s", maxLatencyP95="300ms")
    stable, target, roll = setup(namespace, gateway, mocks, {"latency_ms": 700}, roll)
    load = Load(gateway, "chat", rps=40, threads=8)
    try:
        time.sleep(3)
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        watch_steps(namespace, lambda st: st.get("phase") == "RolledBack", timeout=60)
    finally:
        load.stop()
    checks = {c["name"]: c for c in status(namespace)["lastAnalysis"]["checks"]}
    assert checks["latency-p95"]["verdict"] == "Fail" and checks["latency-p95"]["value"] > 0.3
    assert checks["error-rate"]["verdict"] == "Pass"


def test_very_low_traffic_is_inconclusive_and_held(controller, namespace, gateway, mocks):
    stable, target, roll = setup(namespace, gateway, mocks, roll=rollout(step_duration="10s", min_requests=50))
    load = Load(gateway, "chat", rps=2, threads=1)
    try:
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        watch_steps(namespace, lambda st: st.get("phase") == "Holding" and st.get("step") == 1, timeout=40)
        time.sleep(25)
    finally:
        load.stop()
    st = status(namespace)
    assert (st["phase"], st["step"]) == ("Holding", 1), "neither rolled back nor promoted"
    assert st["lastAnalysis"]["verdict"] == "Inconclusive"
    assert "fewer than minRequests 50" in json.dumps(st["lastAnalysis"])
    assert events(namespace, "AnalysisInconclusive")


def test_sixty_thirty_ten_to_ten_thirty_sixty_blends_exactly(controller, namespace, gateway, mocks):
    a, b, c = mocks("openai"), mocks("openai"), mocks("openai")
    roll = rollout()
    apply(namespace, backend("a", a, "m"), backend("b", b, "m"), backend("c", c, "m"),
          route("chat", [("a", 60), ("b", 30), ("c", 10)], rollout=roll))
    served(gateway, "chat")
    load = Load(gateway, "chat")
    try:
        time.sleep(3)
        apply(namespace, route("chat", [("a", 10), ("b", 30), ("c", 60)], rollout=roll))
        seen = watch_steps(namespace, lambda st: st.get("phase") == "Stable" and st.get("stable", [{}])[0].get(
            "weight") == 10, timeout=240)
    finally:
        load.stop()
    weights = [json.loads(s[3]) for s in seen if s[1] == "Progressing"]
    as_tuples = [tuple(w["weight"] for w in ws) for ws in weights]
    for expected in [(575, 300, 125), (500, 300, 200), (350, 300, 350), (100, 300, 600)]:
        assert expected in as_tuples, as_tuples


def _prometheus_pid():
    return int((E2E_DIR / "pids" / "prometheus.pid").read_text())


@pytest.mark.serial  # stops the one Prometheus: every analysis beside it would turn inconclusive
def test_no_promotion_while_prometheus_is_down(controller, namespace, gateway, mocks):
    stable, target, roll = setup(namespace, gateway, mocks)
    load = Load(gateway, "chat")
    pid = _prometheus_pid()
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")[:-1]
    try:
        time.sleep(3)
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        watch_steps(namespace, lambda st: st.get("step") == 2, timeout=60)
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=15, what="Prometheus stopped")
        held = watch_steps(namespace, lambda st: "unreachable" in json.dumps(st.get("lastAnalysis", {})), timeout=30)
        time.sleep(25)
        st = status(namespace)
        assert st["step"] == 2 and st["phase"] == "Holding", "no promotion while Prometheus is down"
        assert "Prometheus unreachable" in json.dumps(st["lastAnalysis"])
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "PrometheusUnreachable"
        assert max(s[2] or 0 for s in held) == 2
    finally:
        # Bring Prometheus back the way up.sh started it, under the same PID file.
        log = open(E2E_DIR / "logs" / "prometheus.log", "ab")
        proc = subprocess.Popen([c.decode() for c in cmdline], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        (E2E_DIR / "pids" / "prometheus.pid").write_text(str(proc.pid))
        def prometheus_ready():
            try:
                return requests.get(f'{CLUSTER["PROMETHEUS_URL"]}/-/ready', timeout=1).ok
            except requests.RequestException:
                return False

        wait_until(prometheus_ready, timeout=30, what="Prometheus back")
    try:
        watch_steps(namespace, lambda st: st.get("step") == 3, timeout=90)
    finally:
        load.stop()


def test_a_controller_killed_mid_step_resumes_at_the_same_step(controller, namespace, gateway, mocks):
    stable, target, roll = setup(namespace, gateway, mocks, roll=rollout(step_duration="20s"))
    load = Load(gateway, "chat")
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            st = status(namespace)
            samples.append((st.get("step"), json.dumps(st.get("weights"))))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        time.sleep(3)
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        watch_steps(namespace, lambda st: st.get("step") == 2, timeout=60)
        sampler.start()
        before = status(namespace)
        controller.restart(signal.SIGKILL)
        time.sleep(3)
        after = status(namespace)
        assert (after["step"], after["weights"]) == (before["step"], before["weights"]), "resumed at the same step"
        watch_steps(namespace, lambda st: st.get("step") == 3, timeout=90)
    finally:
        stop.set()
        load.stop()
    steps = [s for s, _ in samples if s]
    assert all(b - a in (0, 1) for a, b in zip(steps, steps[1:])), f"weights jumped: {steps}"


def test_kubectl_switchyard_acts_without_touching_spec(controller, namespace, gateway, mocks):
    from conftest import switchyard_binary
    stable, target, roll = setup(namespace, gateway, mocks, roll=rollout(step_duration="10m"))
    load = Load(gateway, "chat", rps=20, threads=2)

    def plugin(*args):
        r = subprocess.run([str(switchyard_binary()), *args, "chat", "-n", namespace], capture_output=True,
                           text=True, timeout=30, env={**os.environ, "KUBECONFIG": CLUSTER["KUBECONFIG"]})
        assert r.returncode == 0, r.stderr
        return r.stdout

    try:
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        watch_steps(namespace, lambda st: st.get("step") == 1, timeout=30)
        generation = kubectl_json("get", "mr", "chat", namespace=namespace)["metadata"]["generation"]
        assert "paused" in plugin("pause").lower() or status(namespace)["phase"] == "Paused"
        assert status(namespace)["phase"] == "Paused"
        plugin("resume")
        assert status(namespace)["phase"] == "Progressing"
        plugin("promote")
        assert status(namespace)["step"] == 2
        assert status(namespace)["weights"] == [{"name": "openai", "weight": 800}, {"name": "candidate", "weight": 200}]
        out = plugin("status")
        assert "20% <- now" in out and "Weights:  openai=800,candidate=200" in out and "Stable:   openai=100" in out
        plugin("abort")
        st = status(namespace)
        assert st["phase"] == "RolledBack" and st["weights"] == [{"name": "openai", "weight": 1000}]
        assert "Aborted" in plugin("status")
        plugin("retry")
        assert status(namespace)["step"] == 1
        plugin("promote", "--full")
        assert status(namespace)["stable"] == [{"name": "candidate", "weight": 100}]
        # A command that changes nothing says why and fails, instead of printing "done".
        r = subprocess.run([str(switchyard_binary()), "promote", "chat", "-n", namespace], capture_output=True,
                           text=True, timeout=30, env={**os.environ, "KUBECONFIG": CLUSTER["KUBECONFIG"]})
        assert r.returncode != 0 and "promote ignored: no migration is in progress" in r.stderr, r
        mr = kubectl_json("get", "mr", "chat", namespace=namespace)
        assert mr["metadata"]["generation"] == generation, "no action touched spec"
        assert events(namespace, "Paused") and events(namespace, "Resumed") and events(namespace, "Promoted")
    finally:
        load.stop()
