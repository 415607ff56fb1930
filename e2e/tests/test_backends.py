"""Self-hosted InferenceBackends on the simulated NVIDIA node pools: the controller deploys
inference pods where the GPUs are, warms them up with real HTTP requests (a mock vLLM answers
on each pod's IP), explains pods the scheduler cannot place, and cleans up after itself."""

import json
import signal
import textwrap

import requests

from conftest import condition, kubectl, kubectl_json, start_controller, wait_until


def self_hosted(name, replicas=1, gpus=1, product="NVIDIA-H100-80GB-HBM3", warmup=0, extra=""):
    product_line = f", product: {product}" if product else ""
    return textwrap.dedent(f"""
        apiVersion: switchyard.dev/v1alpha1
        kind: InferenceBackend
        metadata: {{name: {name}}}
        spec:
          selfHosted:
            runtime: vllm
            model: meta-llama/Llama-3.1-8B-Instruct
            replicas: {replicas}
            gpu: {{count: {gpus}{product_line}}}
          warmup: {{requests: {warmup}}}
        """) + extra


def get(namespace, kind, name):
    return kubectl_json("get", kind, name, namespace=namespace)


def wait_ready(namespace, name, timeout=120):
    def ready():
        c = condition(get(namespace, "ib", name), "Ready")
        return c if c and c["status"] == "True" else None
    return wait_until(ready, timeout=timeout, what=f"backend {name} Ready")


def pods_of(namespace, name):
    return kubectl_json("get", "pods", "-l", f"switchyard.dev/backend={name}", namespace=namespace)["items"]


def events(namespace, name, reason):
    out = kubectl_json("get", "events", "--field-selector",
                       f"involvedObject.name={name},reason={reason}", namespace=namespace)
    return [e.get("note") or e.get("message") for e in out["items"]]


def test_h100_backend_with_two_replicas_runs_on_h100_nodes(controller, namespace):
    kubectl("apply", "-f", "-", input=self_hosted("llama", replicas=2), namespace=namespace)
    c = wait_ready(namespace, "llama")
    assert c["reason"] == "Ready"

    pods = pods_of(namespace, "llama")
    assert len(pods) == 2
    assert all(p["spec"]["nodeName"].startswith("gpu-h100-") for p in pods)
    container = pods[0]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--tensor-parallel-size" in container["args"]

    ib = get(namespace, "ib", "llama")
    status = ib["status"]
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert sorted(e["address"] for e in status["endpoints"]) == sorted(f'{p["status"]["podIP"]}:8000' for p in pods)
    assert status["url"] == f"http://llama.{namespace}.svc:8000/v1"

    # Deployment, Service and PodDisruptionBudget, all owned by the backend.
    for kind in ("deployment", "service", "poddisruptionbudget"):
        obj = get(namespace, kind, "llama")
        owner = obj["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["controller"]) == ("InferenceBackend", "llama", True)

    # The pods really answer HTTP on their IPs.
    health = requests.get(f'http://{status["endpoints"][0]["address"]}/health', timeout=5)
    assert health.status_code == 200

    # A spec change rolls the Deployment to new pods.
    old = {p["metadata"]["name"] for p in pods}
    kubectl("patch", "ib", "llama", "--type=merge", "-p",
            json.dumps({"spec": {"selfHosted": {"args": ["--max-model-len", "4096"]}}}), namespace=namespace)
    kubectl("rollout", "status", "deployment/llama", "--timeout=90s", namespace=namespace)

    def rolled():
        pods = [p for p in pods_of(namespace, "llama") if not p["metadata"].get("deletionTimestamp")]
        new = [p for p in pods if p["metadata"]["name"] not in old]
        return len(new) == 2 and all("--max-model-len" in p["spec"]["containers"][0]["args"] for p in new)

    wait_until(rolled, timeout=90, what="new pods with the changed args")
    wait_ready(namespace, "llama")


def test_l40s_backend_runs_on_l40s_nodes_without_a_pdb(controller, namespace):
    kubectl("apply", "-f", "-", input=self_hosted("mistral", gpus=2, product="NVIDIA-L40S"), namespace=namespace)
    wait_ready(namespace, "mistral")
    pods = pods_of(namespace, "mistral")
    assert [p["spec"]["nodeName"].startswith("gpu-l40s-") for p in pods] == [True]
    assert pods[0]["spec"]["nodeSelector"]["nvidia.com/gpu.product"] == "NVIDIA-L40S"
    assert kubectl("get", "pdb", "mistral", namespace=namespace, check=False).returncode != 0


def test_more_gpus_than_the_pool_has_stalls_with_the_schedulers_reason_and_recovers(controller, namespace):
    # L40S nodes have 4 GPUs each; no node can take 8.
    kubectl("apply", "-f", "-", input=self_hosted("big", gpus=8, product="NVIDIA-L40S"), namespace=namespace)

    def stalled():
        c = condition(get(namespace, "ib", "big"), "Stalled")
        return c if c and c["status"] == "True" else None

    c = wait_until(stalled, timeout=60, what="Stalled=True")
    assert c["reason"] == "InsufficientGPU"
    assert "Insufficient nvidia.com/gpu" in c["message"]
    assert "8 nvidia.com/gpu on NVIDIA-L40S nodes" in c["message"]
    ready = condition(get(namespace, "ib", "big"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InsufficientGPU")
    assert wait_until(lambda: events(namespace, "big", "InsufficientGPU"), timeout=10, what="InsufficientGPU event")

    # Shrinking the ask to what a node has clears it.
    kubectl("patch", "ib", "big", "--type=merge", "-p",
            json.dumps({"spec": {"selfHosted": {"gpu": {"count": 4}}}}), namespace=namespace)
    wait_ready(namespace, "big", timeout=90)
    assert condition(get(namespace, "ib", "big"), "Stalled") is None
    assert wait_until(lambda: events(namespace, "big", "Recovered"), timeout=10, what="Recovered event")


def test_deleting_a_backend_removes_its_objects(controller, namespace):
    kubectl("apply", "-f", "-", input=self_hosted("gone", replicas=2), namespace=namespace)
    wait_ready(namespace, "gone")
    kubectl("delete", "ib", "gone", namespace=namespace)

    def cleaned():
        left = kubectl("get", "deployment,service,pdb,pods", "-l", "switchyard.dev/backend=gone",
                       "-o", "name", namespace=namespace).stdout.split()
        return not left or None

    # Garbage collection by the real controller-manager, through the owner references.
    wait_until(cleaned, timeout=60, what="owned objects garbage-collected")


def test_warm_up_requests_reach_the_pod_before_it_counts_as_ready(controller, namespace):
    before = metric(controller.url, 'switchyard_controller_warmup_requests_total{outcome="success"}')
    kubectl("apply", "-f", "-", input=self_hosted("warm", warmup=40), namespace=namespace)

    def listed():
        status = get(namespace, "ib", "warm").get("status", {})
        if status.get("endpoints"):
            # Read the pod's own counter the moment it becomes routable.
            return status["endpoints"][0]["address"], mock_chat_requests(status["endpoints"][0]["address"])
        return None

    address, served = wait_until(listed, timeout=120, interval=0.1, what="warmed endpoint")
    assert served >= 40, f"pod {address} was listed after only {served} warm-up requests"
    wait_ready(namespace, "warm")
    assert metric(controller.url, 'switchyard_controller_warmup_requests_total{outcome="success"}') - before >= 40
    assert wait_until(lambda: events(namespace, "warm", "WarmupCompleted"), timeout=10, what="WarmupCompleted")


def test_killing_the_leader_hands_over_to_the_standby(crds, namespace):
    # A separate election, in this test's namespace, between two fresh replicas. They run as
    # the admin: the chart grants the Lease only in the controller's own namespace.
    first = start_controller(lease_namespace=namespace, name="ctl-a")
    second = start_controller(lease_namespace=namespace, name="ctl-b")
    try:
        def holder():
            lease = kubectl("get", "lease", "switchyard-controller", "-o", "json",
                            namespace=namespace, check=False)
            return lease.returncode == 0 and json.loads(lease.stdout)["spec"].get("holderIdentity")

        leader_id = wait_until(holder, timeout=30, what="a leader")
        replicas = {first: metric_or_none(first.url, "switchyard_controller_leader"),
                    second: metric_or_none(second.url, "switchyard_controller_leader")}
        leader = next(p for p, v in replicas.items() if v == 1)
        standby = second if leader is first else first
        assert metric(standby.url, "switchyard_controller_leader") == 0

        leader.stop(signal.SIGKILL)
        wait_until(lambda: (h := holder()) and h != leader_id, timeout=30, what="the standby to take the lease")
        wait_until(lambda: metric_or_none(standby.url, "switchyard_controller_leader") == 1, timeout=10,
                   what="the standby to lead")
        # The new leader reconciles.
        before = metric(standby.url, 'switchyard_controller_reconciles_total{kind="inferencebackend"}')
        kubectl("apply", "-f", "-", input=self_hosted("after-failover"), namespace=namespace)
        wait_until(lambda: metric(standby.url, 'switchyard_controller_reconciles_total{kind="inferencebackend"}')
                   > before, timeout=30, what="a reconcile by the new leader")
    finally:
        first.stop()
        second.stop()


def metric_or_none(url, series):
    try:
        return metric(url, series)
    except (requests.RequestException, AssertionError):
        return None


def metric(url, series):
    """The value of one exactly named series on a /metrics page."""
    for line in requests.get(f"{url}/metrics", timeout=2).text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    if "{" not in series:
        raise AssertionError(f"{series} not exported")
    return 0.0


def mock_chat_requests(address):
    stats = requests.get(f"http://{address}/_mock/stats", timeout=2).json()
    return stats["by_path"].get("/v1/chat/completions", 0)
