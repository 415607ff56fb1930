"""kstatus, exactly: sigs.k8s.io/cli-utils' kstatus (the library kubectl, Flux and Argo CD
judge custom resources by) reads the controller's conditions. Every state that waiting will
not fix is `Failed` with a specific reason; work under way is `InProgress`; a serving
backend is `Current`. The objects are put into each state on the local cluster."""

import json
import subprocess
import textwrap

import requests

from conftest import CLUSTER, kubectl, kubectl_json, wait_until
from migration import rollout
from test_argocd import external, run_action
from test_backends import pods_of, self_hosted
from test_gateway_sdk import apply, route


def kstatus(namespace, kind, name):
    """What kstatus computes for the live object: {status, message, reason}."""
    obj = kubectl("get", kind, name, "-o", "json", namespace=namespace).stdout
    out = subprocess.run([CLUSTER["KSTATUS"]], input=obj, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[0])


def becomes(namespace, kind, name, status, reason=None, timeout=60):
    def check():
        r = kstatus(namespace, kind, name)
        return r if r["status"] == status and (reason is None or r.get("reason") == reason) else None
    return wait_until(check, timeout=timeout, interval=0.25, what=f"kstatus {status} {reason or ''} for {kind}/{name}")


def set_container_state(namespace, pod, state, last_state=None):
    """Plays the kubelet: kwok leaves a running pod's status alone, so this sticks."""
    container = pod["spec"]["containers"][0]
    status = {"name": container["name"], "image": container["image"], "imageID": "", "ready": False,
              "restartCount": 3, "started": False, "state": state}
    if last_state:
        status["lastState"] = last_state
    kubectl("patch", "pod", pod["metadata"]["name"], "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"containerStatuses": [status]}}), namespace=namespace)


def test_a_route_naming_a_missing_backend_is_failed(controller, namespace):
    kubectl("apply", "-f", "-", namespace=namespace, input=textwrap.dedent("""
        apiVersion: switchyard.dev/v1alpha1
        kind: ModelRoute
        metadata: {name: chat}
        spec:
          backends: [{name: ghost, weight: 100}]
        """))
    r = becomes(namespace, "mr", "chat", "Failed", "BackendNotFound", timeout=30)
    assert '"ghost"' in r["message"]


def test_a_missing_secret_is_failed_until_it_exists(controller, namespace):
    kubectl("apply", "-f", "-", namespace=namespace, input=textwrap.dedent("""
        apiVersion: switchyard.dev/v1alpha1
        kind: InferenceBackend
        metadata: {name: openai}
        spec:
          external:
            dialect: openai
            baseUrl: https://api.openai.com/v1
            model: gpt-4o
            credentials: {secretRef: {name: openai-key, key: apiKey}}
        """))
    r = becomes(namespace, "ib", "openai", "Failed", "SecretNotFound", timeout=30)
    assert '"openai-key"' in r["message"]
    kubectl("create", "secret", "generic", "openai-key", "--from-literal=other=x", namespace=namespace)
    kubectl("label", "secret", "openai-key", "switchyard.dev/credential=provider", namespace=namespace)
    becomes(namespace, "ib", "openai", "Failed", "SecretKeyMissing", timeout=30)
    kubectl("delete", "secret", "openai-key", namespace=namespace)
    kubectl("create", "secret", "generic", "openai-key", "--from-literal=apiKey=sk-e2e", namespace=namespace)
    kubectl("label", "secret", "openai-key", "switchyard.dev/credential=provider", namespace=namespace)
    becomes(namespace, "ib", "openai", "Current", timeout=30)


def test_stuck_containers_are_failed_with_the_kubelets_reason(controller, namespace):
    kubectl("apply", "-f", "-", input=self_hosted("llama"), namespace=namespace)
    becomes(namespace, "ib", "llama", "Current", timeout=120)
    pod = pods_of(namespace, "llama")[0]

    set_container_state(namespace, pod, {"waiting": {"reason": "CrashLoopBackOff",
                                                     "message": "back-off 40s restarting failed container"}},
                        {"terminated": {"exitCode": 1, "reason": "Error"}})
    r = becomes(namespace, "ib", "llama", "Failed", "CrashLoopBackOff")
    assert pod["metadata"]["name"] in r["message"] and "exited with code 1" in r["message"], r

    set_container_state(namespace, pod, {"waiting": {"reason": "ImagePullBackOff",
                                                     "message": 'Back-off pulling image "vllm/vllm-openai"'}})
    becomes(namespace, "ib", "llama", "Failed", "ImagePullBackOff")

    set_container_state(namespace, pod, {"waiting": {"reason": "CreateContainerConfigError",
                                                     "message": 'secret "hf-token" not found'}})
    r = becomes(namespace, "ib", "llama", "Failed", "CreateContainerConfigError")
    assert 'secret "hf-token" not found' in r["message"]

    set_container_state(namespace, pod, {"running": {"startedAt": "2026-01-01T00:00:00Z"}})
    becomes(namespace, "ib", "llama", "Current")


def test_an_invalid_workload_is_failed_with_the_api_servers_reason(controller, namespace):
    # Requests above limits: the schema accepts it, the Deployment's validation does not (422).
    extra = "    resources: {requests: {cpu: '2'}, limits: {cpu: '1'}}\n"
    manifest = self_hosted("bad").replace("  warmup:", extra + "  warmup:")
    kubectl("apply", "-f", "-", input=manifest, namespace=namespace)
    r = becomes(namespace, "ib", "bad", "Failed", "ApplyInvalid", timeout=30)
    assert "Deployment" in r["message"] and "limit" in r["message"], r


def test_warm_up_in_progress_then_current_and_repeated_failure_is_failed(controller, namespace):
    kubectl("apply", "-f", "-", input=self_hosted("warm", warmup=2000), namespace=namespace)
    becomes(namespace, "ib", "warm", "InProgress", timeout=120)

    # The pod's inference server fails every request from (about) its start: warm-up fails,
    # is retried every 10 s, and after three failures in a row the backend is Failed while it
    # keeps retrying.
    def pod_ip():
        pods = pods_of(namespace, "warm")
        return pods and pods[0].get("status", {}).get("podIP")

    ip = wait_until(pod_ip, timeout=60, what="the pod's IP")

    def inject():
        try:
            return requests.post(f"http://{ip}:8000/_mock/faults", json={"error_rate": 1.0}, timeout=2).ok
        except requests.RequestException:
            return False

    wait_until(inject, timeout=60, what="the pod's mock server")
    r = becomes(namespace, "ib", "warm", "Failed", "WarmupFailed", timeout=90)
    assert pods_of(namespace, "warm")[0]["metadata"]["name"] in r["message"]

    requests.delete(f"http://{ip}:8000/_mock/faults", timeout=2)
    kubectl("patch", "ib", "warm", "--type=merge", "-p", json.dumps({"spec": {"warmup": {"requests": 20}}}),
            namespace=namespace)
    becomes(namespace, "ib", "warm", "Current", timeout=60)
    assert kubectl_json("get", "ib", "warm", namespace=namespace)["status"]["readyReplicas"] == 1


def test_a_route_through_every_phase_of_a_migration(controller, namespace):
    """What Flux's health checks see of a route as a migration goes through its phases: the
    split in effect is Current; a migration on its way (mirroring, progressing, holding) is
    InProgress, so a Kustomization waits for it; a paused one is InProgress too (it waits on
    a person, and a health check that waits must not pass it); rolled back, aborted, or
    stalled without a Prometheus is Failed, with the reason, so a deployment fails fast
    instead of waiting out its timeout."""
    roll = rollout(steps=(10, 50, 100), step_duration="10m", interval="5s")
    apply(namespace, external("openai"), external("candidate", "gpt-4o-mini"),
          route("chat", [("openai", 100)], rollout=roll))
    becomes(namespace, "ib", "candidate", "Current", timeout=30)
    becomes(namespace, "mr", "chat", "Current", timeout=30)

    apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
    wait_until(lambda: kubectl_json("get", "mr", "chat", namespace=namespace)["status"].get("step") == 1,
               timeout=30, what="step 1")
    r = becomes(namespace, "mr", "chat", "InProgress", timeout=30)
    assert "step 1" in r["message"], r

    run_action(namespace, "chat", "pause")
    r = becomes(namespace, "mr", "chat", "InProgress", timeout=30)
    assert "Paused" in r.get("reason", "") + r["message"], r
    run_action(namespace, "chat", "resume")
    # Held on analyses without traffic (inconclusive): still on its way.
    wait_until(lambda: kubectl_json("get", "mr", "chat", namespace=namespace)["status"]["phase"] == "Holding",
               timeout=30, what="Holding")
    becomes(namespace, "mr", "chat", "InProgress", timeout=30)

    run_action(namespace, "chat", "abort")
    r = becomes(namespace, "mr", "chat", "Failed", timeout=30)
    assert "abort" in r["message"].lower(), r

    run_action(namespace, "chat", "retry")
    becomes(namespace, "mr", "chat", "InProgress", timeout=30)
    run_action(namespace, "chat", "promote-full")
    becomes(namespace, "mr", "chat", "Current", timeout=30)

    # Mirroring, then rolled back by its own analysis (no traffic and onInconclusive: Rollback).
    mirror = {**rollout(steps=(50, 100), interval="8s", onInconclusive="Rollback"),
              "mirror": {"percent": 100, "duration": "10m"}}
    apply(namespace, route("chat", [("candidate", 100)], rollout=mirror))
    apply(namespace, route("chat", [("openai", 100)], rollout=mirror))
    wait_until(lambda: kubectl_json("get", "mr", "chat", namespace=namespace)["status"].get("phase") == "Mirroring",
               timeout=30, what="Mirroring")
    becomes(namespace, "mr", "chat", "InProgress", timeout=10)
    r = becomes(namespace, "mr", "chat", "Failed", timeout=60)
    assert "RolledBack" in r.get("reason", "") + r["message"], r
