"""A small at-scale check (the 10,000-route run is `make bench`): with a few hundred routes
and backends in its namespace, the controller settles them and then writes nothing, and the
gateway's CPU per request is what it is with a handful of routes."""

import json
import pathlib
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from conftest import kubectl, kubectl_json, wait_until

ROUTES = 400
TICK = 100  # clock ticks per second in /proc/<pid>/stat (USER_HZ, 100 on Linux)


def objects(first, count, url):
    items = []
    for i in range(first, first + count):
        items.append({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
                      "metadata": {"name": f"b{i}"},
                      "spec": {"external": {"dialect": "openai", "baseUrl": f"{url}/v1", "model": "m"}}})
        items.append({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute", "metadata": {"name": f"r{i}"},
                      "spec": {"model": f"model-{i}", "backends": [{"name": f"b{i}", "weight": 1}]}})
    return {"apiVersion": "v1", "kind": "List", "items": items}


def settled(namespace, count):
    routes = kubectl_json("get", "mr", namespace=namespace)["items"]
    return len(routes) == count and all((r.get("status") or {}).get("weights") for r in routes)


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_per_request(gateway, models, n=800):
    """The gateway's CPU seconds per request over `n` requests spread across `models`."""
    session = gateway.session()

    def one(i):
        r = session.post(f"{gateway.url}/v1/chat/completions", timeout=10,
                         json={"model": models[i % len(models)], "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200, r.text

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(100)))  # warm connections
        before = cpu_seconds(gateway.proc.proc.pid)
        list(pool.map(one, range(n)))
    return (cpu_seconds(gateway.proc.proc.pid) - before) / n


def test_hundreds_of_routes_settle_then_nothing_is_written_and_requests_cost_the_same(
        controller, namespace, gateway, mocks):
    provider = mocks("openai")
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps(objects(0, 3, provider.url)))
    wait_until(lambda: settled(namespace, 3), timeout=60, what="3 routes settled")
    few = [f"model-{i}" for i in range(3)]
    wait_until(lambda: gateway.post("/v1/chat/completions", timeout=5, json={
        "model": few[-1], "messages": [{"role": "user", "content": "hi"}]}).status_code == 200,
        what="gateway serves the routes")
    small = cpu_per_request(gateway, few)

    kubectl("apply", "--server-side", "-f", "-", namespace=namespace,
            input=json.dumps(objects(3, ROUTES - 3, provider.url)))
    started = time.monotonic()
    wait_until(lambda: settled(namespace, ROUTES), timeout=180, interval=2, what=f"{ROUTES} routes settled")
    settle = time.monotonic() - started

    # Steady state: nothing the controller owns in this namespace changes, and no Event is
    # recorded, while nothing happens. A write here would be a reconcile loop.
    def versions():
        state = {}
        for kind in ("mr", "ib"):
            for o in kubectl_json("get", kind, namespace=namespace)["items"]:
                state[f"{kind}/{o['metadata']['name']}"] = o["metadata"]["resourceVersion"]
        return state, len(kubectl_json("get", "events", namespace=namespace)["items"])
    time.sleep(3)  # the last status writes of the settle reach the cache
    before = versions()
    time.sleep(12)
    after = versions()
    changed = sorted(k for k in before[0] if before[0][k] != after[0].get(k))
    assert not changed, f"written in steady state: {changed[:10]} ({len(changed)} objects)"
    assert before[1] == after[1], f"events recorded in steady state: {before[1]} → {after[1]}"

    # The gateway serves every model from a table: the cost of a request does not depend on
    # how many routes the namespace holds. Generous bound: a debug build on a busy machine.
    many = [f"model-{i}" for i in range(0, ROUTES, 7)]
    wait_until(lambda: gateway.post("/v1/chat/completions", timeout=5, json={
        "model": many[-1], "messages": [{"role": "user", "content": "hi"}]}).status_code == 200,
        what="gateway serves the new routes")
    large = cpu_per_request(gateway, many)
    print(f"{ROUTES} routes settled in {settle:.1f}s; gateway CPU per request {small * 1e3:.3f} ms with 3 "
          f"routes, {large * 1e3:.3f} ms with {ROUTES}")
    assert large <= small * 1.5, (
        f"CPU per request grows with the configuration: {small * 1e3:.3f} ms with 3 routes, "
        f"{large * 1e3:.3f} ms with {ROUTES}")
