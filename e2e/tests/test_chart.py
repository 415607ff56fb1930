"""The Helm chart, checked statically: `helm lint --strict`; every manifest it renders, with its
defaults and with every optional feature on, validated by kubeconform in strict mode against
JSON schemas made from this cluster's API server (and the Switchyard and Prometheus Operator
CRDs), with nothing skipped; its values schema refusing a mistyped key or value at `helm
install`; and what each value renders: flags, notes, autoscaling, disruption budgets, spread,
placement, and monitors that select the right pods and ports."""

import copy
import json
import pathlib
import re
import shutil
import subprocess
import uuid

import pytest
import yaml

import kubeschemas
from conftest import CLUSTER, E2E_DIR, REPO, kubectl

CHART = REPO / "charts" / "switchyard"
RELEASE_NS = "switchyard-system"

PLACEMENT = {
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "switchyard", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]}}},
    "podAnnotations": {"example.com/owner": "platform", "prometheus.io/scrape": "false"},
    "podLabels": {"team": "platform", "app.kubernetes.io/component": "not-mine"},
    "priorityClassName": "switchyard-high",
    "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule"},
        {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"team": "platform"}}},
    ],
}

# Every optional feature on (a ServiceMonitor; EVERYTHING_POD_MONITOR has a PodMonitor instead,
# as the chart refuses both at once).
EVERYTHING = {
    "image": {"repository": "registry.example.com/switchyard", "tag": "0.1.0", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
    "watchNamespaces": ["team-a", "team-b"],
    "controller": {"replicas": 3, "leaseDuration": "20s", "unschedulableGrace": "1m", "logJson": False,
                   "prometheus": {"url": "http://prometheus-operated.monitoring:9090", "scrapeInterval": "30s"},
                   "instanceId": "blue", "pdb": {"enabled": True, "maxUnavailable": 1},
                   "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
                   **PLACEMENT},
    "gateway": {"auth": "disabled", "service": {"type": "LoadBalancer", "port": 8080},
                "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12,
                                "targetCPUUtilizationPercentage": 60},
                "pdb": {"enabled": True, "maxUnavailable": "25%"}, **PLACEMENT},
    "metrics": {"serviceMonitor": {"enabled": True, "interval": "30s", "namespace": "monitoring",
                                   "labels": {"release": "kube-prometheus-stack"}}},
    "grafana": {"dashboards": {"enabled": True, "namespace": "monitoring",
                               "annotations": {"grafana_folder": "Switchyard"}}},
}
EVERYTHING_POD_MONITOR = {**EVERYTHING, "metrics": {"podMonitor": EVERYTHING["metrics"]["serviceMonitor"]}}


def helm(*args, check=True):
    proc = subprocess.run([CLUSTER["HELM"], *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def workdir():
    """A directory of this module's own (tests may run in parallel processes)."""
    path = E2E_DIR / f"chart-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def values_file(workdir, values):
    path = workdir / f"values-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def render(*args, values=None, workdir=None, namespace=RELEASE_NS, check=True):
    """`helm template` of the chart: the manifests as text (the process when check=False)."""
    extra = ["-f", values_file(workdir, values)] if values is not None else []
    proc = helm("template", "switchyard", str(CHART), "--namespace", namespace, "--kube-version", "1.33.0",
                *extra, *args, check=check)
    return proc.stdout if check else proc


def docs(text):
    return [d for d in yaml.safe_load_all(text) if d]


def one(manifests, kind, name):
    found = [d for d in manifests if d["kind"] == kind and d["metadata"]["name"] == name]
    names = [(d["kind"], d["metadata"]["name"]) for d in manifests]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found among {names}"
    return found[0]


def install_dry_run(*args):
    """`helm install --dry-run=client`: what a user's install prints (the notes among it),
    or the error that stops it. The API server is asked only for its version."""
    return helm("install", "switchyard", str(CHART), "--namespace", RELEASE_NS, "--dry-run=client", *args,
                check=False)


def notes(*args):
    proc = install_dry_run(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\nNOTES:\n", 1)[1]


def selects(match_labels, labels):
    return all(labels.get(k) == v for k, v in match_labels.items())


def pod_spec(manifests, component):
    return one(manifests, "Deployment", f"switchyard-{component}")["spec"]["template"]


def container_ports(template):
    return {p["name"]: p["containerPort"] for c in template["spec"]["containers"] for p in c.get("ports", [])}


# --- helm lint and kubeconform -------------------------------------------------------------


@pytest.mark.parametrize("values", [None, EVERYTHING, EVERYTHING_POD_MONITOR],
                         ids=["defaults", "everything", "everything-pod-monitor"])
def test_helm_lint_strict_passes(values, workdir):
    args = ["-f", values_file(workdir, values)] if values else []
    out = helm("lint", "--strict", str(CHART), *args).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


def prometheus_operator_crds():
    """The ServiceMonitor and PodMonitor CRDs e2e/cluster/build.sh took from the Prometheus
    Operator's module, where versions.sh says."""
    out = subprocess.run(["bash", "-c", f'. "{REPO}/e2e/cluster/versions.sh" && echo "$PROMETHEUS_OPERATOR_CRDS_DIR"'],
                         capture_output=True, text=True, check=True).stdout.strip()
    files = sorted(pathlib.Path(out).glob("monitoring.coreos.com_*.yaml"))
    assert {f.name for f in files} >= {"monitoring.coreos.com_servicemonitors.yaml",
                                       "monitoring.coreos.com_podmonitors.yaml"}, \
        f"no Prometheus Operator CRDs in {out}; run e2e/cluster/build.sh"
    return files


@pytest.fixture(scope="module")
def schemas(workdir):
    """kubeconform's -schema-location: a schema per kind, from the API server's OpenAPI v3
    documents, the chart's CRDs and the Prometheus Operator's monitors. Nothing downloaded."""
    documents = kubeschemas.fetch_openapi_v3(kubectl)
    made = {}
    for path, document in documents.items():
        made.update(kubeschemas.from_openapi_v3(path, document))
    object_meta = documents["api/v1"]["components"]["schemas"]
    for crd in sorted((CHART / "crds").glob("*.yaml")) + prometheus_operator_crds():
        made.update(kubeschemas.from_crd(yaml.safe_load(crd.read_text()), object_meta))
    root = workdir / "schemas"
    kubeschemas.write(root, made)
    assert ("apps", "v1", "Deployment") in made and ("monitoring.coreos.com", "v1", "ServiceMonitor") in made
    return f"{root}/{kubeschemas.LOCATION}"


def kubeconform(schemas, manifests, *files):
    """kubeconform -strict over `manifests` (text) or files: (summary, results)."""
    args = [CLUSTER["KUBECONFORM"], "-strict", "-summary", "-output", "json", "-verbose",
            "-schema-location", schemas, *(files or ["-"])]
    proc = subprocess.run(args, input=manifests, capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stdout)
    return report["summary"], report["resources"]


def assert_all_valid(schemas, text):
    summary, results = kubeconform(schemas, text)
    bad = [r for r in results if r["status"] != "statusValid"]
    assert not bad, json.dumps(bad, indent=1)
    # Every document was validated: none skipped (a kind without a schema), none missed.
    assert summary == {"valid": len(docs(text)), "invalid": 0, "errors": 0, "skipped": 0}, summary
    return {(r["version"], r["kind"]) for r in results}


def test_the_default_manifests_and_crds_are_valid(schemas):
    kinds = assert_all_valid(schemas, render("--include-crds"))
    assert kinds == {("apiextensions.k8s.io/v1", "CustomResourceDefinition"), ("v1", "ServiceAccount"),
                     ("rbac.authorization.k8s.io/v1", "ClusterRole"),
                     ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
                     ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
                     ("apps/v1", "Deployment"), ("v1", "Service"), ("policy/v1", "PodDisruptionBudget")}


def cluster_wide(values, workdir):
    """(kind, name) of the cluster-scoped RBAC objects the chart renders with `values`."""
    return [(d["kind"], d["metadata"]["name"]) for d in docs(render(values=values, workdir=workdir))
            if d["kind"].startswith("Cluster")]


@pytest.mark.parametrize("values,monitor", [(EVERYTHING, "ServiceMonitor"), (EVERYTHING_POD_MONITOR, "PodMonitor")],
                         ids=["service-monitor", "pod-monitor"])
def test_every_optional_feature_renders_valid_manifests(schemas, workdir, values, monitor):
    kinds = assert_all_valid(schemas, render(values=values, workdir=workdir))
    assert {("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
            ("v1", "ConfigMap"), ("monitoring.coreos.com/v1", monitor)} <= kinds, kinds
    # watchNamespaces: nothing cluster-wide but the gateway's TokenReview grant, which has no
    # namespaced form (the controller's evaluation replays; off with evaluationReplays=false).
    assert sorted(cluster_wide(values, workdir)) == [
        ("ClusterRole", "switchyard-gateway-tokenreview-blue"), ("ClusterRoleBinding", "switchyard-gateway-tokenreview-blue")]
    assert not cluster_wide({**values, "gateway": {**values.get("gateway", {}), "evaluationReplays": False}},
                            workdir), "watchNamespaces and no replays: nothing cluster-wide"


def test_the_examples_are_valid_custom_resources(schemas):
    examples = sorted(str(p) for p in (REPO / "examples").glob("*.yaml"))
    summary, results = kubeconform(schemas, None, *examples)
    bad = [r for r in results if r["status"] != "statusValid"]
    assert not bad and summary["invalid"] == summary["errors"] == summary["skipped"] == 0, json.dumps(bad, indent=1)
    assert {"InferenceBackend", "ModelRoute", "Tenant"} <= {r["kind"] for r in results}


def test_kubeconform_reports_what_the_api_server_would_refuse(schemas, workdir):
    """The validation can fail: an unknown field, a value outside an enum, a misspelled field
    of a monitor (so the CRD schemas are strict too), and a kind nobody defined."""
    manifests = docs(render(values=EVERYTHING, workdir=workdir))
    gateway = one(manifests, "Deployment", "switchyard-gateway")
    gateway["spec"]["template"]["spec"]["bogusField"] = 1
    gateway["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Sometimes"
    monitor = one(manifests, "ServiceMonitor", "switchyard-gateway")
    monitor["spec"]["endpoints"][0]["prot"] = monitor["spec"]["endpoints"][0].pop("port")
    unknown = {"apiVersion": "example.com/v1", "kind": "Nothing", "metadata": {"name": "x"}}
    summary, results = kubeconform(schemas, yaml.safe_dump_all([gateway, monitor, unknown]))
    assert summary == {"valid": 0, "invalid": 2, "errors": 1, "skipped": 0}, summary
    by_kind = {r["kind"]: r for r in results}
    assert "additional properties 'bogusField' not allowed" in by_kind["Deployment"]["msg"]
    assert "'Always', 'IfNotPresent', 'Never'" in by_kind["Deployment"]["msg"]
    assert "additional properties 'prot' not allowed" in by_kind["ServiceMonitor"]["msg"]
    assert "could not find schema for Nothing" in by_kind["Nothing"]["msg"]


def test_the_api_server_accepts_what_the_chart_renders(namespace, workdir):
    """A server-side dry run of the defaults and of every feature the cluster has the kinds
    for (it has no Prometheus Operator): admission and validation beyond the schemas."""
    values = copy.deepcopy(EVERYTHING)
    values["watchNamespaces"] = [namespace]
    values["grafana"]["dashboards"]["namespace"] = namespace
    del values["metrics"]
    for text in (render(namespace=namespace), render(values=values, workdir=workdir, namespace=namespace)):
        out = kubectl("apply", "--dry-run=server", "-f", "-", input=text).stdout
        assert "(server dry run)" in out, out


# --- the values schema -------------------------------------------------------------------


SCHEMA_CASES = [
    ("controller.prometheus.ulr=x", "/controller/prometheus", "additional properties 'ulr' not allowed"),
    ("gatway.replicas=3", "", "additional properties 'gatway' not allowed"),
    ("gateway.auth=maybe", "/gateway/auth", "value must be one of 'required', 'disabled'"),
    ("gateway.service.type=ExternalName", "/gateway/service/type", "value must be one of"),
    ("controller.leaseDuration=fifteen", "/controller/leaseDuration", "does not match pattern"),
    ("controller.replicas=0", "/controller/replicas", "minimum: got 0, want 1"),
    ("gateway.pdb.maxUnavailable=0", "/gateway/pdb/maxUnavailable", "'oneOf' failed"),
    ("metrics.podMonitor.interval=30 seconds", "/metrics/podMonitor/interval", "does not match pattern"),
    ("controller.instanceId=Blue_1", "/controller/instanceId", "does not match pattern"),
    ("grafana.dashboards.enabled=yes", "/grafana/dashboards/enabled", "want boolean"),
]


@pytest.mark.parametrize("setting,where,message", SCHEMA_CASES, ids=[c[0].split("=")[0] for c in SCHEMA_CASES])
def test_the_values_schema_refuses_a_mistyped_value_at_install(setting, where, message):
    proc = install_dry_run("--set-string" if setting.endswith("=yes") else "--set", setting)
    assert proc.returncode != 0, f"{setting} was accepted"
    assert "values don't meet the specifications of the schema" in proc.stderr, proc.stderr
    assert f"- at '{where}'" in proc.stderr and message in proc.stderr, proc.stderr


def leaf_paths(values, prefix=""):
    """Dotted paths of values.yaml's leaves (an empty map or list is a leaf)."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, path + ".")
        else:
            yield path


def schema_at(schema, path):
    """The schema of a value: every object on the way is closed (additionalProperties: false)
    and declares the key, but for maps of arbitrary keys (labels, resources' quantities),
    whose entries have one schema."""
    node = schema
    for key in path.split("."):
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        if isinstance(node.get("additionalProperties"), dict) and not node.get("properties"):
            node = node["additionalProperties"]
            continue
        assert node.get("additionalProperties") is False, f"{path}: the object holding {key!r} is open"
        assert key in node["properties"], f"{path}: not in values.schema.json"
        node = node["properties"][key]
    return node


def test_the_values_schema_and_the_readme_cover_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()
    paths = list(leaf_paths(values))
    assert len(paths) > 40, paths
    undocumented = []
    for path in paths:
        schema_at(schema, path)
        # The README's table names the value or a map it belongs to (`controller.resources`).
        parts = path.split(".")
        if not any(f"`{'.'.join(parts[:n])}`" in readme for n in range(len(parts), 0, -1)):
            undocumented.append(path)
    assert not undocumented, f"values missing from charts/switchyard/README.md: {undocumented}"

    # And the schema declares nothing values.yaml does not have (a stale or misspelled entry).
    parents = {".".join(p.split(".")[:n]) for p in paths for n in range(1, p.count(".") + 1)}

    def declared(node, prefix=""):
        while "$ref" in node:
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
        for key, sub in (node.get("properties") or {}).items():
            yield prefix + key
            if prefix + key in parents:
                yield from declared(sub, prefix + key + ".")

    stale = [p for p in declared(schema) if p not in set(paths) | parents | {"global"}]
    assert not stale, f"declared in values.schema.json, absent from values.yaml: {stale}"


# --- what the values render ----------------------------------------------------------------


def controller_args(manifests):
    return pod_spec(manifests, "controller")["spec"]["containers"][0]["args"]


def test_prometheus_url_becomes_the_controllers_flag_and_the_notes_warn_without_it():
    default = docs(render("--show-only", "templates/controller.yaml"))
    assert not [a for a in controller_args(default) if a.startswith(("--prometheus-url", "--scrape-interval"))]
    text = notes()
    assert "WARNING: controller.prometheus.url is not set" in text
    assert "PrometheusNotConfigured" in text

    url = "http://prometheus-operated.monitoring:9090"
    args = controller_args(docs(render("--show-only", "templates/controller.yaml",
                                       "--set", f"controller.prometheus.url={url}",
                                       "--set", "controller.prometheus.scrapeInterval=30s")))
    assert f"--prometheus-url={url}" in args and "--scrape-interval=30s" in args
    assert "WARNING" not in notes("--set", f"controller.prometheus.url={url}")


def test_the_notes_give_the_next_commands():
    text = notes("--set", "controller.prometheus.url=http://prometheus:9090")
    assert f"kubectl -n {RELEASE_NS} rollout status deploy/switchyard-controller deploy/switchyard-gateway" in text
    assert f"kubectl -n {RELEASE_NS} port-forward svc/switchyard-gateway 8000:80" in text
    assert "Authorization: Bearer $KEY" in text and "examples/tenant-app.yaml" in text
    assert "kubectl switchyard status chat -n team-a" in text
    # The example files it names exist (test_the_notes_route_is_valid checks the route it applies).
    for name in re.findall(r"examples/[\w.-]+\.yaml", text):
        assert (REPO / name).exists(), name

    scoped = notes("--set", "watchNamespaces={ml-prod}", "--set", "gateway.auth=disabled",
                   "--set", "controller.instanceId=blue")
    assert "kubectl create namespace" not in scoped and "-n ml-prod" in scoped
    assert "$KEY" not in scoped and "tenant-app" not in scoped
    assert "switchyard.dev/controller-instance-id=blue" in scoped


def test_the_notes_route_is_valid(schemas):
    route = re.search(r"<<< '(\{.*?\})'", notes(), re.S).group(1)
    summary, _ = kubeconform(schemas, json.dumps(json.loads(route)))
    assert summary == {"valid": 1, "invalid": 0, "errors": 0, "skipped": 0}, summary


def test_an_instance_id_is_rendered_and_names_the_installs_rbac():
    manifests = docs(render("--set", "controller.instanceId=blue"))
    assert "--instance-id=blue" in controller_args(manifests)
    gateway_args = pod_spec(manifests, "gateway")["spec"]["containers"][0]["args"]
    assert not [a for a in gateway_args if "instance" in a]
    bindings = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "ClusterRoleBinding"}
    assert set(bindings) == {"switchyard-controller-blue", "switchyard-gateway-blue",
                             "switchyard-gateway-tokenreview-blue"}
    for component in ("controller", "gateway", "gateway-tokenreview"):
        binding = bindings[f"switchyard-{component}-blue"]
        assert binding["roleRef"]["name"] == f"switchyard-{component}-blue"
        account = "switchyard-gateway" if component == "gateway-tokenreview" else f"switchyard-{component}"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account,
                                        "namespace": RELEASE_NS}]
    assert {d["metadata"]["name"] for d in manifests if d["kind"] == "ClusterRole"} == set(bindings)
    assert not [a for a in controller_args(docs(render())) if "instance" in a]


def test_gateway_autoscaling_replaces_the_replica_count():
    default = docs(render())
    assert one(default, "Deployment", "switchyard-gateway")["spec"]["replicas"] == 2
    assert not [d for d in default if d["kind"] == "HorizontalPodAutoscaler"]

    manifests = docs(render("--set", "gateway.autoscaling.enabled=true", "--set", "gateway.autoscaling.minReplicas=3",
                            "--set", "gateway.autoscaling.maxReplicas=9",
                            "--set", "gateway.autoscaling.targetCPUUtilizationPercentage=65"))
    assert "replicas" not in one(manifests, "Deployment", "switchyard-gateway")["spec"]
    assert one(manifests, "Deployment", "switchyard-controller")["spec"]["replicas"] == 2
    hpa = one(manifests, "HorizontalPodAutoscaler", "switchyard-gateway")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "switchyard-gateway"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 9)
    assert hpa["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 65}}}]
    # Utilization is measured against the CPU request, so there must be one.
    assert pod_spec(manifests, "gateway")["spec"]["containers"][0]["resources"]["requests"]["cpu"]

    bad = render("--set", "gateway.autoscaling.enabled=true", "--set", "gateway.autoscaling.minReplicas=5",
                 "--set", "gateway.autoscaling.maxReplicas=2", check=False)
    assert bad.returncode != 0 and "minReplicas (5) is more than gateway.autoscaling.maxReplicas (2)" in bad.stderr


def pdbs(*args):
    return {d["metadata"]["name"]: d for d in docs(render(*args)) if d["kind"] == "PodDisruptionBudget"}


def test_disruption_budgets_protect_replicas_and_never_block_a_drain():
    manifests = docs(render())
    budgets = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "PodDisruptionBudget"}
    assert set(budgets) == {"switchyard-controller", "switchyard-gateway"}
    for component in ("controller", "gateway"):
        spec = budgets[f"switchyard-{component}"]["spec"]
        # One at a time, and never zero: a budget of maxUnavailable >= 1 always lets a drain go on.
        assert spec["maxUnavailable"] == 1 and "minAvailable" not in spec
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
        labels = pod_spec(manifests, component)["metadata"]["labels"]
        other = pod_spec(manifests, "gateway" if component == "controller" else "controller")["metadata"]["labels"]
        assert selects(spec["selector"]["matchLabels"], labels)
        assert not selects(spec["selector"]["matchLabels"], other)

    # A single replica gets no budget (it would protect nothing); autoscaling may add replicas.
    assert pdbs("--set", "controller.replicas=1", "--set", "gateway.replicas=1") == {}
    assert set(pdbs("--set", "controller.replicas=1", "--set", "gateway.replicas=1",
                    "--set", "gateway.autoscaling.enabled=true")) == {"switchyard-gateway"}
    assert pdbs("--set", "controller.pdb.enabled=false", "--set", "gateway.pdb.enabled=false") == {}
    percent = pdbs("--set-string", "gateway.pdb.maxUnavailable=50%")["switchyard-gateway"]
    assert percent["spec"]["maxUnavailable"] == "50%"


def test_replicas_spread_over_nodes_by_default():
    manifests = docs(render())
    for component in ("controller", "gateway"):
        template = pod_spec(manifests, component)
        [spread] = template["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname"
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway" and spread["maxSkew"] == 1
        assert spread["labelSelector"]["matchLabels"] == {"app.kubernetes.io/instance": "switchyard",
                                                         "app.kubernetes.io/component": component}
        assert selects(spread["labelSelector"]["matchLabels"], template["metadata"]["labels"])
        assert spread["matchLabelKeys"] == ["pod-template-hash"]

    off = docs(render("--set", "controller.topologySpreadConstraints=null", "--set-json",
                      "gateway.topologySpreadConstraints=[]"))
    for component in ("controller", "gateway"):
        assert "topologySpreadConstraints" not in pod_spec(off, component)["spec"]


def test_placement_values_reach_both_pod_specs(workdir):
    manifests = docs(render(values=EVERYTHING, workdir=workdir))
    for component in ("controller", "gateway"):
        template = pod_spec(manifests, component)
        spec, meta = template["spec"], template["metadata"]
        assert spec["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
        assert spec["containers"][0]["image"] == "registry.example.com/switchyard:0.1.0"
        assert spec["containers"][0]["imagePullPolicy"] == "Always"
        for key in ("nodeSelector", "tolerations", "affinity", "priorityClassName"):
            assert spec[key] == PLACEMENT[key], key
        # Extra labels beside the chart's, which stay (the selectors use them).
        assert meta["labels"]["team"] == "platform"
        assert meta["labels"]["app.kubernetes.io/component"] == component
        assert selects(one(manifests, "Deployment", f"switchyard-{component}")["spec"]["selector"]["matchLabels"],
                       meta["labels"])
        # Annotations may override the chart's (here: no scraping through annotations).
        assert meta["annotations"]["example.com/owner"] == "platform"
        assert meta["annotations"]["prometheus.io/scrape"] == "false"
        zone, host = spec["topologySpreadConstraints"]
        assert zone["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == component
        assert host["labelSelector"] == {"matchLabels": {"team": "platform"}} and "matchLabelKeys" not in host

    default = docs(render())
    for component in ("controller", "gateway"):
        spec = pod_spec(default, component)["spec"]
        assert not {"imagePullSecrets", "nodeSelector", "tolerations", "affinity", "priorityClassName"} & set(spec)
        # Restricted Pod Security, probes and requests stay.
        assert spec["securityContext"]["runAsNonRoot"] is True
        container = spec["containers"][0]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["livenessProbe"] and container["readinessProbe"] and container["resources"]["requests"]
        assert pod_spec(default, component)["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


METRICS_PORTS = {"controller": "metrics", "gateway": "admin"}


def test_service_monitors_scrape_every_pod_on_its_metrics_port(workdir):
    manifests = docs(render(values=EVERYTHING, workdir=workdir))
    services = {d["metadata"]["name"]: d for d in manifests if d["kind"] == "Service"}
    assert set(services) == {"switchyard-gateway", "switchyard-controller-metrics", "switchyard-gateway-metrics"}
    # Applications' Service exposes the API only, never the admin port.
    assert [p["targetPort"] for p in services["switchyard-gateway"]["spec"]["ports"]] == ["http"]
    for component, port in METRICS_PORTS.items():
        template = pod_spec(manifests, component)
        service = services[f"switchyard-{component}-metrics"]
        assert service["metadata"]["namespace"] == RELEASE_NS
        assert service["spec"]["clusterIP"] == "None"
        assert selects(service["spec"]["selector"], template["metadata"]["labels"])
        assert [(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == \
            [(port, container_ports(template)[port], port)]
        monitor = one(manifests, "ServiceMonitor", f"switchyard-{component}")
        assert monitor["metadata"]["namespace"] == "monitoring"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NS]}
        # It selects its metrics Service and no other.
        selected = [name for name, s in services.items()
                    if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        assert selected == [f"switchyard-{component}-metrics"]
        assert monitor["spec"]["endpoints"] == [{"port": port, "path": "/metrics", "interval": "30s"}]

    default = docs(render())
    assert not [d for d in default if d["kind"] in ("ServiceMonitor", "PodMonitor")]
    assert [d["metadata"]["name"] for d in default if d["kind"] == "Service"] == ["switchyard-gateway"]


def test_pod_monitors_scrape_every_pod_without_a_service(workdir):
    manifests = docs(render(values=EVERYTHING_POD_MONITOR, workdir=workdir))
    assert [d["metadata"]["name"] for d in manifests if d["kind"] == "Service"] == ["switchyard-gateway"]
    for component, port in METRICS_PORTS.items():
        template = pod_spec(manifests, component)
        monitor = one(manifests, "PodMonitor", f"switchyard-{component}")
        assert monitor["metadata"]["namespace"] == "monitoring"
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NS]}
        assert selects(monitor["spec"]["selector"]["matchLabels"], template["metadata"]["labels"])
        other = pod_spec(manifests, "gateway" if component == "controller" else "controller")
        assert not selects(monitor["spec"]["selector"]["matchLabels"], other["metadata"]["labels"])
        assert monitor["spec"]["podMetricsEndpoints"] == [{"port": port, "path": "/metrics", "interval": "30s"}]
        assert port in container_ports(template)
        # The pod annotations agree with the port the monitor scrapes.
        annotations = pod_spec(docs(render()), component)["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) == container_ports(template)[port]


def test_both_kinds_of_monitor_at_once_are_refused():
    proc = render("--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.podMonitor.enabled=true",
                  check=False)
    assert proc.returncode != 0
    assert "metrics.serviceMonitor.enabled and metrics.podMonitor.enabled both scrape every pod" in proc.stderr
