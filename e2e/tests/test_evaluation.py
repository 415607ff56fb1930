"""The quality gate: an evaluation set in a ConfigMap, replayed by the controller through the
gateway (pinned to each backend, authenticated with the controller's ServiceAccount token,
verified by the gateway with a TokenReview) before step 1. A new backend that answers
invalid JSON blocks the migration with the failing cases named; one that answers like the
stable backend moves on. Replays are counted as `outcome="eval"`, never as live traffic."""

import json
import uuid

from conftest import kubectl, start_controller, start_gateway, wait_until
from migration import events, status
from test_gateway_sdk import apply, backend, route

CONTROLLER_SA = "system:serviceaccount:switchyard-system:switchyard-controller"
JSON_SCHEMA = {"type": "object", "required": ["reply"], "properties": {"reply": {"type": "string"}}}
CASES = [
    {"name": "refund-policy-json", "system": "Answer as a JSON object with the key reply.",
     "prompt": "What is the refund window?", "responseFormat": {"type": "json_object"},
     "expect": {"jsonSchema": JSON_SCHEMA}},
    {"name": "shipping-json", "system": "Answer as a JSON object with the key reply.",
     "prompt": "How long does shipping take?", "responseFormat": {"type": "json_object"},
     "expect": {"jsonSchema": JSON_SCHEMA}},
    {"name": "greeting", "prompt": "hello there", "expect": {"regex": "hello there"}},
]
ROLLOUT = {"steps": [50, 100], "stepDuration": "30s",
           "analysis": {"interval": "5s", "minRequests": 0, "maxErrorRate": 0.5, "failureLimit": 0},
           "evaluation": {"configMapRef": {"name": "support-qa"}, "minRelativePassRate": 0.9}}


def labelled(instance, *groups):
    docs = [doc for group in groups for doc in group]
    for d in docs:
        d["metadata"].setdefault("labels", {})["switchyard.dev/controller-instance-id"] = instance
    return docs


def gated_migration(namespace, rbac, mocks, candidate_faults):
    """A route on `openai` migrating to `candidate`, reconciled by a controller of its own (an
    instance id, so the session's controller leaves it alone) that replays through this
    test's gateway. Returns (gateway, controller, candidate mock)."""
    instance = f"eval-{uuid.uuid4().hex[:5]}"
    stable, candidate = mocks("openai"), mocks("openai")
    if candidate_faults:
        candidate.faults(**candidate_faults)
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "support-qa"},
        "data": {"cases.yaml": json.dumps(CASES)}}))
    gw = start_gateway(rbac["gateway"], namespace, "--evaluation-identity", CONTROLLER_SA)
    ctl = start_controller(lease_namespace=namespace, name="eval-controller",
                           extra=["--instance-id", instance, "--gateway-url", gw.url,
                                  "--service-account", "switchyard-system/switchyard-controller"])
    apply(namespace, labelled(instance, backend("openai", stable, "gpt-4o"), backend("candidate", candidate, "llama"),
                               route("chat", [("openai", 100)], rollout=ROLLOUT)))
    wait_until(lambda: status(namespace).get("phase") == "Stable", timeout=30, what="stable route")
    apply(namespace, labelled(instance, route("chat", [("candidate", 100)], rollout=ROLLOUT)))
    return gw, ctl, candidate


def test_an_eval_set_where_the_new_backend_answers_invalid_json_blocks_step_1(crds, rbac, namespace, mocks):
    gw, ctl, candidate = gated_migration(namespace, rbac, mocks, {"invalid_json_rate": 1.0})
    try:
        wait_until(lambda: status(namespace).get("phase") == "RolledBack", timeout=60,
                   what="the migration rolled back by the evaluation")
        st = status(namespace)
        ev = st["evaluation"]
        assert ev["verdict"] == "Fail" and ev["step"] == 0, ev
        assert {(b["backend"], b["stable"], b["passed"], b["total"]) for b in ev["backends"]} == {
            ("openai", True, 3, 3), ("candidate", False, 1, 3)}, ev
        failing = {(f["backend"], f["case"]) for f in ev["failing"]}
        assert failing == {("candidate", "refund-policy-json"), ("candidate", "shipping-json")}, ev
        assert all(f["reason"].startswith("not JSON") for f in ev["failing"]), ev
        # The rollback says why, naming the failing cases; the Events too.
        stalled = next(c for c in st["conditions"] if c["type"] == "Stalled")
        assert stalled["reason"] == "RolledBack", stalled
        assert "evaluation failed: candidate passed 1 of 3 cases" in stalled["message"], stalled
        assert "refund-policy-json on candidate: not JSON" in stalled["message"], stalled
        assert any("candidate passed 1 of 3" in e for e in events(namespace, "EvaluationFailed"))
        # Nothing moved: the candidate never carried live traffic, every request it got was a
        # replay, counted as such and as tenant switchyard:eval.
        assert st["history"][-1]["outcome"] == "RolledBack"
        assert all(w["name"] == "openai" for w in st["weights"]), st["weights"]
        assert gw.metric("switchyard_requests_total", backend="candidate", outcome="eval") == 3
        assert gw.metric("switchyard_requests_total", backend="candidate", outcome="success") == 0
        assert gw.metric("switchyard_requests_total", backend="openai", outcome="eval",
                         tenant="switchyard:eval") == 3
        assert candidate.chat_requests() == 3
    finally:
        ctl.stop()
        gw.proc.stop()


def test_an_eval_set_the_new_backend_passes_lets_the_migration_move_on(crds, rbac, namespace, mocks):
    gw, ctl, _ = gated_migration(namespace, rbac, mocks, None)
    try:
        wait_until(lambda: (status(namespace).get("step") or 0) >= 1, timeout=60, what="step 1 after the evaluation")
        ev = status(namespace)["evaluation"]
        assert ev["verdict"] == "Pass", ev
        assert {(b["backend"], b["passed"], b["total"]) for b in ev["backends"]} == {
            ("openai", 3, 3), ("candidate", 3, 3)}, ev
        assert any("candidate passed 3 of 3" in e for e in events(namespace, "EvaluationPassed"))
    finally:
        ctl.stop()
        gw.proc.stop()
