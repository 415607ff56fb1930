"""`helm install` of the chart, with its defaults, yields running controller and gateway pods
that carry a migration end to end.

The pods run the real binary from the image's root filesystem (the image built by
image/build.sh, loaded into the cluster as `kind load` would; e2e/cluster/pod_runtime.py runs
it): each in a network namespace of its own on the pod's IP, with the pod's args and env, a
ServiceAccount token from the TokenRequest API, and KUBERNETES_SERVICE_HOST/PORT pointing at
the API server as a kubelet sets them. There is no kube-proxy or DNS, so the test reaches the
gateway by pod IP, and the chart takes the Prometheus URL as given.

The release differs from the defaults in what this cluster needs only: its namespace is the
one it watches (the suite's own controller holds the chart's cluster-wide names), and an
instance id, so that the suite's controller and this one never both act on one route.
"""

import json
import subprocess
import time
import types
import uuid

import pytest
import requests

from conftest import CLUSTER, E2E_DIR, REPO, ensure_tenant, kubectl, kubectl_json, load_image, wait_until
from migration import events, status, watch_steps
from test_gateway_sdk import apply, backend, route
from test_migrations import rollout
from traffic import Load, Replicas

INSTANCE_LABEL = "switchyard.dev/controller-instance-id"
PROMETHEUS_PORT = CLUSTER["PROMETHEUS_URL"].rsplit(":", 1)[1]


def pods(namespace, component):
    return [p for p in kubectl_json("get", "pods", "-l", f"app.kubernetes.io/component={component}",
                                    namespace=namespace)["items"]
            if p["status"].get("phase") == "Running" and p["status"].get("podIP")
            and not p["metadata"].get("deletionTimestamp")]


def answers(url):
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def release(crds, image):
    load_image(image)
    ns = f"e2e-chart-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", ns)
    helm = [CLUSTER["HELM"], "--kubeconfig", CLUSTER["KUBECONFIG"]]
    subprocess.run([*helm, "install", "switchyard", str(REPO / "charts" / "switchyard"), "-n", ns,
                    "--set", f"image.tag={image['tag']}",
                    "--set", f"controller.prometheus.url=http://{CLUSTER['POD_HOST_ADDR']}:{PROMETHEUS_PORT}",
                    "--set", f"watchNamespaces={{{ns}}}", "--set", f"controller.instanceId={ns}",
                    "--wait", "--timeout", "3m"], check=True, capture_output=True, text=True)
    targets = E2E_DIR / "prometheus" / "targets" / f"chart-{ns}.json"
    yield types.SimpleNamespace(namespace=ns, targets=targets)
    targets.unlink(missing_ok=True)
    subprocess.run([*helm, "uninstall", "switchyard", "-n", ns, "--wait", "--timeout", "1m"], capture_output=True)
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_the_installed_chart_runs_its_pods_and_carries_a_migration_end_to_end(release, mocks):
    ns = release.namespace
    # Both components' replicas run the binary on their own IPs, each answering its probes.
    wait_until(lambda: len(pods(ns, "gateway")) == 2 and len(pods(ns, "controller")) == 2, timeout=60,
               what="two gateway and two controller pods Running")
    gateways, controllers = pods(ns, "gateway"), pods(ns, "controller")
    gateway_ips = [p["status"]["podIP"] for p in gateways]
    for ip in gateway_ips:
        wait_until(lambda: answers(f"http://{ip}:9090/readyz"), timeout=60, what=f"gateway pod {ip} /readyz")
    for p in controllers:
        wait_until(lambda: answers(f'http://{p["status"]["podIP"]}:8080/healthz'), timeout=60,
                   what=f'controller pod {p["metadata"]["name"]} /healthz')
    # One of the controller pods leads, under its own name (POD_NAME from the downward API),
    # through the API server it found from KUBERNETES_SERVICE_HOST with its pod-bound token.
    names = {p["metadata"]["name"] for p in controllers}
    wait_until(lambda: kubectl_json("get", "lease", "switchyard-controller", namespace=ns)["spec"]
               .get("holderIdentity") in names, timeout=60, what="a controller pod holding the Lease")

    host = CLUSTER["POD_HOST_ADDR"]
    stable, target = mocks("openai", host=host), mocks("openai", host=host)
    roll = rollout()

    def ours(group):
        for doc in group:
            doc["metadata"]["labels"] = {INSTANCE_LABEL: ns}
        return group

    apply(ns, ours(backend("openai", stable, "gpt-4o")), ours(backend("candidate", target, "llama")),
          ours(route("chat", [("openai", 100)], rollout=roll)))
    key = ensure_tenant(ns)
    kubectl("label", "tenant", "e2e-app", f"{INSTANCE_LABEL}={ns}", "--overwrite", namespace=ns)
    # Prometheus scrapes both gateway pods on their admin port, as a PodMonitor would.
    tmp = release.targets.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [f"{ip}:9090" for ip in gateway_ips], "labels": {"component": ns}}]))
    tmp.rename(release.targets)

    replicas = Replicas([types.SimpleNamespace(url=f"http://{ip}:8000", admin_url=f"http://{ip}:9090",
                                               headers={"Authorization": f"Bearer {key}"}) for ip in gateway_ips])

    def served_by_both():
        for ip in gateway_ips:
            try:
                r = requests.get(f"http://{ip}:8000/v1/models", headers=replicas.headers, timeout=2)
            except requests.RequestException:
                return False
            if r.status_code != 200 or "chat" not in [m["id"] for m in r.json().get("data", [])]:
                return False
        return True

    wait_until(served_by_both, timeout=60, what="both gateway pods serving the route to the tenant")
    wait_until(lambda: status(ns).get("phase") == "Stable", timeout=60, what="the route Stable")

    load = Load(replicas, "chat", rps=30)
    try:
        time.sleep(3)
        apply(ns, ours(route("chat", [("candidate", 100)], rollout=roll)))
        seen = watch_steps(ns, lambda st: st.get("phase") == "Stable" and st.get("stable") == [
            {"name": "candidate", "weight": 100}], timeout=240)
    finally:
        load.stop()
    steps = [s for s in seen if s[1] == "Progressing" and s[2]]
    assert [s[2] for s in steps][:4] == [1, 2, 3, 4], [s[1:] for s in seen]
    records = load.between()
    ok = [r for r in records if r.ok]
    assert len(ok) >= 0.99 * len(records), [r.error for r in records if not r.ok][:5]
    # Both gateway pods carried traffic, and both backends answered through them.
    assert {r.target for r in ok} == {f"http://{ip}:8000" for ip in gateway_ips}
    assert stable.chat_requests() > 0 and target.chat_requests() > 0
    # The chart's controller, not the suite's, judged and promoted it: the Events name a pod.
    promoted = kubectl_json("get", "events", "--field-selector", "involvedObject.name=chat,reason=Promoted",
                            namespace=ns)["items"]
    assert promoted and {e.get("reportingInstance") for e in promoted} <= names, promoted
    assert events(ns, "StepAdvanced")
    # What the pods wrote is their log as `kubectl logs` would show it: no terminal escapes.
    logs = list((E2E_DIR / "logs" / "pods").glob(f"{ns}_*.log"))
    assert len(logs) == 4 and not [f.name for f in logs if "\x1b[" in f.read_text()], logs
