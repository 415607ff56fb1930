"""The local cluster is the real thing: the real scheduler places GPU pods by NVIDIA labels,
taints and `nvidia.com/gpu` capacity, the real controller-manager runs Deployments, and
Prometheus scrapes whatever the tests register."""

import json
import uuid

import requests

from conftest import CLUSTER, E2E_DIR, add_scrape_target, kubectl, kubectl_json, wait_until

H100 = "NVIDIA-H100-80GB-HBM3"


def gpu_pod(name, gpus, product=H100):
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": product},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [{
                "name": "inference",
                "image": "vllm/vllm-openai:v0.11.0",
                "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
            }],
        },
    })


def test_node_pools_look_like_gpu_feature_discovery_made_them():
    nodes = {n["metadata"]["name"]: n for n in kubectl_json("get", "nodes")["items"]}
    assert sorted(nodes) == ["cpu-1", "cpu-2", "gpu-h100-1", "gpu-h100-2", "gpu-l40s-1", "gpu-l40s-2"]
    h100 = nodes["gpu-h100-1"]
    assert h100["metadata"]["labels"]["nvidia.com/gpu.product"] == H100
    assert h100["metadata"]["labels"]["nvidia.com/gpu.memory"] == "81559"
    assert h100["metadata"]["labels"]["switchyard.dev/node-pool"] == "gpu-h100"
    assert h100["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in h100["spec"]["taints"]
    l40s = nodes["gpu-l40s-2"]
    assert l40s["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-L40S"
    assert l40s["status"]["allocatable"]["nvidia.com/gpu"] == "4"
    assert "nvidia.com/gpu" not in nodes["cpu-1"]["status"]["allocatable"]
    assert not nodes["cpu-1"]["spec"].get("taints")
    for n in nodes.values():
        ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"


def test_a_one_gpu_pod_runs_on_an_h100_node(namespace):
    kubectl("apply", "-f", "-", input=gpu_pod("llama", 1), namespace=namespace)
    kubectl("wait", "--for=condition=Ready", "pod/llama", "--timeout=60s", namespace=namespace)
    pod = kubectl_json("get", "pod", "llama", namespace=namespace)
    assert pod["spec"]["nodeName"].startswith("gpu-h100-")
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["podIP"].startswith("10.244.")


def test_a_pod_asking_for_16_gpus_stays_pending_and_the_scheduler_says_why(namespace):
    kubectl("apply", "-f", "-", input=gpu_pod("too-big", 16), namespace=namespace)

    def failed_scheduling():
        events = kubectl_json("get", "events", "--field-selector",
                              "involvedObject.name=too-big,reason=FailedScheduling", namespace=namespace)
        return [e["message"] for e in events["items"]]

    messages = wait_until(failed_scheduling, timeout=60, what="FailedScheduling event")
    assert any("Insufficient nvidia.com/gpu" in m for m in messages), messages
    pod = kubectl_json("get", "pod", "too-big", namespace=namespace)
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")


def test_a_pod_without_the_toleration_stays_off_gpu_nodes(namespace):
    kubectl("run", "web", "--image=nginx:1.27", "--overrides",
            json.dumps({"spec": {"nodeSelector": {"nvidia.com/gpu.product": H100}}}), namespace=namespace)

    def untolerated():
        events = kubectl_json("get", "events", "--field-selector",
                              "involvedObject.name=web,reason=FailedScheduling", namespace=namespace)
        return [e["message"] for e in events["items"] if "untolerated taint" in e["message"]]

    messages = wait_until(untolerated, timeout=60, what="FailedScheduling for the GPU taint")
    assert "nvidia.com/gpu: present" in messages[0]


def test_a_deployment_gets_its_pods_through_the_controller_manager(namespace):
    kubectl("create", "deployment", "web", "--image=nginx:1.27", "--replicas=3", namespace=namespace)
    kubectl("rollout", "status", "deployment/web", "--timeout=90s", namespace=namespace)
    pods = kubectl_json("get", "pods", "-l", "app=web", namespace=namespace)["items"]
    assert len(pods) == 3
    # Pods owned through a ReplicaSet: the controller-manager did the work.
    assert all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for p in pods)
    # No GPU toleration: the scheduler keeps them on the CPU pool.
    assert all(p["spec"]["nodeName"].startswith("cpu-") for p in pods)


def test_prometheus_scrapes_a_target_that_a_test_registers(controller):
    """Later tests add the gateway and mock providers the same way: a file in targets/."""
    prom = CLUSTER["PROMETHEUS_URL"]
    job = f"e2e-{uuid.uuid4().hex[:6]}"
    target = controller.url.removeprefix("http://")
    path = E2E_DIR / "prometheus" / "targets" / f"{job}.json"
    add_scrape_target(job, target)
    try:
        def series():
            r = requests.get(f"{prom}/api/v1/query", params={
                "query": f'switchyard_controller_reconciles_total{{component="{job}"}}'}, timeout=5)
            return r.json()["data"]["result"]

        result = wait_until(series, timeout=60, interval=1, what="controller metrics in Prometheus")
        # Tenants are reconciled too once a test has made one.
        kinds = {r["metric"]["kind"] for r in result}
        assert {"inferencebackend", "modelroute"} <= kinds <= {"inferencebackend", "modelroute", "tenant"}, kinds
    finally:
        path.unlink()
