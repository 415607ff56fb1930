"""A backend that still carries traffic cannot vanish: the `switchyard.dev/in-use` finalizer
keeps a deleted InferenceBackend (and its workload) while a route's weights, stable split,
target, mirror or fallback use it; the backend names the routes holding it, the gateway keeps
serving through it, and deletion proceeds once the last route lets go."""

import json

import requests

from conftest import condition, kubectl, kubectl_json, wait_until
from test_backends import events
from test_gateway_sdk import apply, backend, route, served

FINALIZER = "switchyard.dev/in-use"


def ib(namespace, name):
    out = kubectl("get", "ib", name, "-o", "json", namespace=namespace, check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def ask(gateway, model="chat"):
    r = gateway.post("/v1/chat/completions", timeout=10,
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    return r.status_code, r.headers.get("x-switchyard-backend")


def test_a_backend_in_use_is_kept_and_named_until_the_last_route_lets_go(controller, namespace, gateway, mocks):
    old, new = mocks("openai"), mocks("openai")
    apply(namespace, backend("old", old, "gpt-4o"), backend("new", new, "gpt-4o"),
          route("chat", [("old", 100)]), route("other", [("new", 100)], fallback=["old"]))
    wait_until(lambda: (kubectl_json("get", "mr", "chat", namespace=namespace).get("status") or {}).get("weights"),
               timeout=30, what="chat's weights")
    served(gateway, "chat")
    wait_until(lambda: FINALIZER in (ib(namespace, "old")["metadata"].get("finalizers") or []),
               timeout=30, what="the in-use finalizer")

    kubectl("delete", "ib", "old", "--wait=false", namespace=namespace)

    def held():
        c = condition(ib(namespace, "old") or {}, "Reconciling")
        return c if c and c["reason"] == "InUse" else None

    c = wait_until(held, timeout=30, what="the InUse condition")
    assert c["status"] == "True"
    assert "ModelRoute chat, other" in c["message"], c["message"]
    assert wait_until(lambda: events(namespace, "old", "InUse"), timeout=10, what="the InUse event")
    # Still serving through the deleted backend, which still exists.
    assert [ask(gateway) for _ in range(5)] == [(200, "old")] * 5
    assert ib(namespace, "old")["metadata"].get("deletionTimestamp")

    # One route lets go (its fallback no longer names it): the other still holds it.
    kubectl("patch", "mr", "other", "--type=json", "-p", '[{"op": "remove", "path": "/spec/fallback"}]',
            namespace=namespace)
    wait_until(lambda: (c := held()) and "ModelRoute chat " in c["message"] + " " and "other" not in c["message"],
               timeout=30, what="only chat holding it")
    assert ib(namespace, "old") is not None

    # The last route lets go: deletion proceeds.
    kubectl("delete", "mr", "chat", namespace=namespace)
    wait_until(lambda: ib(namespace, "old") is None, timeout=30, what="the backend to be deleted")
