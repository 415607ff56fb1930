"""Argo CD over Switchyard's resources, run as Argo CD runs them: e2e/argocd-lua is Argo CD's
Lua runtime (gopher-lua with only the libraries Argo CD opens, `obj` injected the same way,
results read the same way), and it takes the scripts from the argocd-cm ConfigMap rendered
from argocd/, as a user would paste it. The objects are put into each state on the local
cluster; what an action returns is applied as Argo CD applies it (a JSON merge patch) and the
controller carries the command out."""

import json
import pathlib
import subprocess
import textwrap

import yaml

from conftest import E2E_DIR, REPO, kubectl, kubectl_json, wait_until
from migration import rollout
from test_backends import self_hosted
from test_gateway_sdk import apply, route

ARGOCD = REPO / "argocd"
ACTIONS = ["abort", "pause", "promote", "promote-full", "resume", "retry"]


def _tool():
    out = subprocess.run(["bash", "-c", '. "$0" && echo "$ARGOCD_LUA_BIN_DIR/argocd-lua"',
                          str(REPO / "e2e" / "cluster" / "versions.sh")],
                         capture_output=True, text=True, check=True)
    path = pathlib.Path(out.stdout.strip())
    assert path.exists(), f"{path} is missing; run `bash e2e/cluster/build.sh`"
    return str(path)


TOOL = _tool()


def argocd_lua(*args, obj=None):
    r = subprocess.run([TOOL, args[0], str(ARGOCD), *args[1:]], capture_output=True, text=True, timeout=30,
                       input=None if obj is None else json.dumps(obj))
    assert r.returncode == 0, f"argocd-lua {' '.join(args)} failed:\n{r.stderr}"
    return r.stdout


def health(obj):
    """What Argo CD shows for the object: {status, message}."""
    return json.loads(argocd_lua("health", obj=obj))


def live(namespace, kind, name):
    # Argo CD's live objects carry managedFields, full of the empty objects Lua cannot tell
    # from empty arrays.
    return kubectl_json("get", kind, name, "--show-managed-fields", namespace=namespace)


def becomes(namespace, kind, name, status, *fragments, timeout=60):
    """Waits until Argo CD would show `status` for the live object with each fragment in its
    message; returns (object, health)."""
    def check():
        obj = live(namespace, kind, name)
        hs = health(obj)
        return (obj, hs) if hs["status"] == status and all(f in hs["message"] for f in fragments) else None

    def last():
        return health(live(namespace, kind, name))

    try:
        return wait_until(check, timeout=timeout, interval=0.5, what=f"Argo CD health {status} of {kind}/{name}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nhealth now: {last()}") from None


def offered(obj):
    """The actions Argo CD offers on the object, enabled or not, by name."""
    actions = json.loads(argocd_lua("actions", obj=obj))
    assert sorted(actions) == ACTIONS, actions
    return sorted(n for n, a in actions.items() if not a.get("disabled"))


def run_action(namespace, name, action):
    """Runs an action on the live route as Argo CD does and sends the patch Argo CD would
    send; returns the route's status once the controller has handled the command."""
    obj = live(namespace, "mr", name)
    result = json.loads(argocd_lua("run", action, obj=obj))
    assert [r["operation"] for r in result["impacted"]] == ["patch"], result
    patch = result["patch"]
    annotations = patch["metadata"]["annotations"]
    # Only the command annotations change: nothing in spec for Argo CD to see as drift, and
    # no empty object of the live one turned into an array by the trip through Lua.
    assert patch == {"metadata": {"annotations": annotations}}, patch
    assert annotations["switchyard.dev/command"] == action
    cid = annotations["switchyard.dev/command-id"]
    assert cid.startswith("argocd-") and obj["metadata"]["resourceVersion"] in cid, cid
    kubectl("patch", "mr", name, "--type=merge", "-p", json.dumps(patch), namespace=namespace)

    def handled():
        st = live(namespace, "mr", name).get("status", {})
        return st if st.get("lastCommand") == cid else None
    st = wait_until(handled, timeout=30, what=f"the controller to handle {action}")
    assert " ignored: " not in st["lastCommandResult"], st["lastCommandResult"]
    return st


def external(name, model="gpt-4o"):
    """A hosted backend without credentials: Ready as soon as the controller sees it; the
    controller never calls the provider."""
    return [{"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": {"name": name},
             "spec": {"external": {"dialect": "openai", "baseUrl": "https://api.openai.com/v1", "model": model}}}]


def before_the_controller(obj):
    """The object as Argo CD sees it right after applying it: no status yet."""
    return {k: v for k, v in obj.items() if k != "status"}


def just_edited(obj):
    """The object as Argo CD sees it right after a spec change the controller has not seen."""
    edited = json.loads(json.dumps(obj))
    edited["metadata"]["generation"] += 1
    return edited


def test_argocd_cm_is_the_lua_scripts_rendered_and_patches_in_as_they_are(namespace):
    rendered = argocd_lua("configmap")
    assert (ARGOCD / "argocd-cm.yaml").read_text() == rendered, \
        "argocd/argocd-cm.yaml is out of date with the Lua scripts; run `make argocd`"

    # Merged into an existing argocd-cm the way its header says, each key holds the script
    # exactly as it is in its file.
    kubectl("create", "configmap", "argocd-cm", "--from-literal=url=https://argocd.example.com", namespace=namespace)
    assert rendered.count("\n  namespace: argocd\n") == 1
    patch = E2E_DIR / f"argocd-cm-{namespace}.yaml"
    patch.write_text(rendered.replace("\n  namespace: argocd\n", f"\n  namespace: {namespace}\n"))
    kubectl("patch", "configmap", "argocd-cm", "--patch-file", str(patch), namespace=namespace)
    patch.unlink()
    data = kubectl_json("get", "configmap", "argocd-cm", namespace=namespace)["data"]
    assert data.pop("url") == "https://argocd.example.com", "the patch keeps Argo CD's own settings"
    kinds = sorted(p.parent.name for p in ARGOCD.glob("switchyard.dev/*/health.lua"))
    assert kinds == ["InferenceBackend", "ModelRoute", "Tenant"]
    for kind in kinds:
        assert data.pop(f"resource.customizations.health.switchyard.dev_{kind}") == \
            (ARGOCD / "switchyard.dev" / kind / "health.lua").read_text()
    actions = yaml.safe_load(data.pop("resource.customizations.actions.switchyard.dev_ModelRoute"))
    scripts = ARGOCD / "switchyard.dev" / "ModelRoute" / "actions"
    assert actions["discovery.lua"] == (scripts / "discovery.lua").read_text()
    assert [d["name"] for d in actions["definitions"]] == ACTIONS
    for d in actions["definitions"]:
        assert d["action.lua"] == (scripts / d["name"] / "action.lua").read_text()
    assert not data, f"unexpected keys {sorted(data)}"


def test_backend_health_follows_its_credentials(controller, namespace):
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
    becomes(namespace, "ib", "openai", "Degraded", "SecretNotFound: ", 'Secret "openai-key" not found')
    kubectl("create", "secret", "generic", "openai-key", "--from-literal=apiKey=sk-e2e", namespace=namespace)
    # The message carries the controller's fix, the command included.
    becomes(namespace, "ib", "openai", "Degraded", "SecretNotLabelled: ",
            f"kubectl label secret openai-key -n {namespace} switchyard.dev/credential=provider")
    kubectl("label", "secret", "openai-key", "switchyard.dev/credential=provider", namespace=namespace)
    obj, hs = becomes(namespace, "ib", "openai", "Healthy", 'Ready: credentials found in Secret "openai-key"')

    assert health(before_the_controller(obj)) == {
        **hs, "status": "Progressing", "message": "waiting for the Switchyard controller to report on this backend"}
    generation = obj["metadata"]["generation"] + 1
    assert health(just_edited(obj))["status"] == "Progressing"
    assert health(just_edited(obj))["message"] == \
        f"waiting for the Switchyard controller to observe generation {generation}"


def test_self_hosted_backend_health_from_starting_pods_to_scaled_to_zero(controller, namespace):
    kubectl("apply", "-f", "-", input=self_hosted("llama", warmup=200), namespace=namespace)
    _, hs = becomes(namespace, "ib", "llama", "Progressing", "/1 pods ready and warmed up", timeout=120)
    assert hs["message"].split(":")[0] in ("PodsStarting", "WarmingUp"), hs
    becomes(namespace, "ib", "llama", "Healthy", "Ready: 1/1 pods ready and warmed up", timeout=120)

    kubectl("patch", "ib", "llama", "--type=merge", "-p", '{"spec": {"selfHosted": {"replicas": 0}}}',
            namespace=namespace)
    becomes(namespace, "ib", "llama", "Suspended", "ScaledToZero: replicas is 0")

    # Eight L40S per pod: no node has them, and the scheduler says so.
    kubectl("apply", "-f", "-", input=self_hosted("big", gpus=8, product="NVIDIA-L40S"), namespace=namespace)
    _, hs = becomes(namespace, "ib", "big", "Degraded", "InsufficientGPU: ", "8 nvidia.com/gpu", timeout=90)
    assert "Insufficient nvidia.com/gpu" in hs["message"], hs


def test_states_that_are_hard_to_reach_live(namespace):
    """Written by hand, from what the controller writes: a spec admission refuses today (an
    older CRD let it in), endpoints ejected by the gateway's outlier detection (needs live
    failing traffic and Prometheus), a status without the Ready condition it always writes."""
    cases = {
        "backend-invalid-spec.yaml": ("Degraded", "InvalidSpec: set exactly one of spec.external or spec.selfHosted"),
        "backend-endpoints-ejected.yaml": ("Healthy", "Ready: 2/2 pods ready and warmed up; OutlierEjection: "
                                           "1 endpoint(s) ejected by the gateway's outlier detection"),
        "route-without-ready.yaml": ("Unknown", "the status of generation 3 has no Ready condition"),
    }
    fixtures = sorted(p.name for p in (ARGOCD / "testdata").glob("*.yaml"))
    assert fixtures == sorted(cases)
    for name, (status, message) in cases.items():
        hs = health(yaml.safe_load((ARGOCD / "testdata" / name).read_text()))
        assert hs["status"] == status and hs["message"].startswith(message), (name, hs)


def test_a_migration_driven_by_argocd_actions(controller, namespace):
    """Each action, offered only where the controller would carry it out, applied as Argo CD
    applies it; the route's health follows the migration through every phase."""
    roll = rollout(steps=(10, 50, 100), step_duration="10m", interval="5s")
    apply(namespace, external("openai"), external("candidate", "gpt-4o-mini"), route("chat", [("openai", 100)],
                                                                                    rollout=roll))
    becomes(namespace, "ib", "candidate", "Healthy")
    obj, _ = becomes(namespace, "mr", "chat", "Healthy", "SplitInEffect: the desired split is fully in effect")
    assert offered(obj) == []
    generation = obj["metadata"]["generation"] + 1

    apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
    wait_until(lambda: live(namespace, "mr", "chat")["status"].get("step") == 1, timeout=30, what="step 1")
    obj, _ = becomes(namespace, "mr", "chat", "Progressing", "migrating to candidate=100 (step 1), now openai=900,candidate=100")
    assert offered(obj) == ["abort", "pause", "promote", "promote-full"]

    st = run_action(namespace, "chat", "pause")
    assert st["phase"] == "Paused" and st["lastCommandResult"] == "pause: paused at step 1"
    obj, _ = becomes(namespace, "mr", "chat", "Suspended", "Paused: migrating to candidate=100 (step 1)")
    assert offered(obj) == ["abort", "promote", "promote-full", "resume"]

    st = run_action(namespace, "chat", "resume")
    assert st["phase"] in ("Progressing", "Holding") and st["lastCommandResult"] == "resume: resumed at step 1"
    becomes(namespace, "mr", "chat", "Progressing")

    st = run_action(namespace, "chat", "promote")
    assert st["step"] == 2 and st["weightsSummary"] == "openai=500,candidate=500"
    # Advanced, then held on analyses without traffic (inconclusive): still on its way.
    obj, hs = becomes(namespace, "mr", "chat", "Progressing", "(step 2)")
    assert hs["message"].split(":")[0] in ("Progressing", "Holding"), hs
    wait_until(lambda: live(namespace, "mr", "chat")["status"]["phase"] == "Holding", timeout=30, what="Holding")
    becomes(namespace, "mr", "chat", "Progressing", "Holding: migrating to candidate=100 (step 2)")

    run_action(namespace, "chat", "abort")
    obj, _ = becomes(namespace, "mr", "chat", "Degraded", "Aborted: aborted by an operator; serving openai=100")
    assert offered(obj) == ["retry"]

    st = run_action(namespace, "chat", "retry")
    assert st["lastCommandResult"] == "retry: retrying the rolled-back migration"
    wait_until(lambda: live(namespace, "mr", "chat")["status"].get("step") == 1, timeout=30, what="step 1 again")
    obj, _ = becomes(namespace, "mr", "chat", "Progressing", "(step 1)")
    assert offered(obj) == ["abort", "pause", "promote", "promote-full"]

    st = run_action(namespace, "chat", "promote-full")
    assert st["phase"] == "Stable" and st["stable"] == [{"name": "candidate", "weight": 100}]
    obj, _ = becomes(namespace, "mr", "chat", "Healthy", "SplitInEffect")
    assert offered(obj) == []
    assert obj["metadata"]["generation"] == generation, "no action touched spec"


def test_a_rolled_back_mirror_is_degraded_and_offers_retry(controller, namespace):
    roll = {**rollout(steps=(50, 100), interval="8s", onInconclusive="Rollback"),
            "mirror": {"percent": 100, "duration": "10m"}}
    apply(namespace, external("openai"), external("candidate", "gpt-4o-mini"), route("chat", [("openai", 100)],
                                                                                    rollout=roll))
    becomes(namespace, "mr", "chat", "Healthy")
    becomes(namespace, "ib", "candidate", "Healthy")
    apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
    # Shadow traffic first; its first analysis finds none and, as asked, rolls back.
    becomes(namespace, "mr", "chat", "Progressing", "Mirroring: migrating to candidate=100", timeout=30)
    obj, hs = becomes(namespace, "mr", "chat", "Degraded", "RolledBack: inconclusive and onInconclusive is Rollback",
                      timeout=60)
    assert "serving openai=100" in hs["message"], hs
    assert offered(obj) == ["retry"]


def test_route_health_names_what_needs_a_person(controller, namespace):
    apply(namespace, external("openai"), route("chat", [("openai", 100)]))
    obj, _ = becomes(namespace, "mr", "chat", "Healthy", "SplitInEffect")
    assert health(before_the_controller(obj))["status"] == "Progressing"
    generation = obj["metadata"]["generation"] + 1
    assert health(just_edited(obj)) == {
        **health(obj), "status": "Progressing",
        "message": f"waiting for the Switchyard controller to observe generation {generation}"}

    apply(namespace, route("ghost", [("ghost", 100)], model="ghost"))
    becomes(namespace, "mr", "ghost", "Degraded", 'BackendNotFound: InferenceBackend "ghost" not found')

    # A second route claiming the model name: the older keeps serving and says so.
    apply(namespace, route("chat-too", [("openai", 100)], model="chat"))
    becomes(namespace, "mr", "chat-too", "Degraded", 'ModelConflict: model "chat" is served by the older ModelRoute chat')
    becomes(namespace, "mr", "chat", "Healthy", "SplitInEffect", '; ModelConflict: model "chat" is also claimed by ModelRoute chat-too')


def test_tenant_health_follows_its_keys(controller, namespace):
    kubectl("apply", "-f", "-", namespace=namespace, input=textwrap.dedent("""
        apiVersion: switchyard.dev/v1alpha1
        kind: Tenant
        metadata: {name: app}
        spec:
          keys: [{secretRef: {name: app-key, key: key}}]
        """))
    becomes(namespace, "tenant", "app", "Degraded", "SecretNotFound: 0 of 1 keys accepted", '"app-key"')
    kubectl("create", "secret", "generic", "app-key", "--from-literal=key=sk-app", namespace=namespace)
    kubectl("label", "secret", "app-key", "switchyard.dev/credential=tenant-key", namespace=namespace)
    becomes(namespace, "tenant", "app", "Healthy", "Ready: 1 of 1 keys accepted")
