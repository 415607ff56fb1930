"""Chaos in the data path, with steady traffic and a migration in progress: gateway replicas
stopped and killed behind a client-side balancer, the primary provider failing in each way
providers fail (with a healthy fallback tier), self-hosted pods deleted. These touch only
the test's own processes and namespace, so they run in the main suite. Each scenario prints
its figures (requests, failures, success rate, durations)."""

import json
import signal
import threading
import time

import pytest
import requests

from conftest import E2E_DIR, kubectl, kubectl_json, start_gateway, wait_until
from migration import StatusSampler, rollout, shares, start_migration, status, wait_slice_ready
from test_gateway_sdk import apply, backend, served
from traffic import Load, Replicas, figure, summarize


def metric_sum(gateway, name, **labels):
    """The sum of a metric's series on the gateway's /metrics that carry `labels`."""
    total = 0.0
    for line in requests.get(f"{gateway.admin_url}/metrics", timeout=2).text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.split()[-1])
    return total


def stop_gateway(gw, sig=signal.SIGTERM):
    (E2E_DIR / "prometheus" / "targets" / f"{gw.job}.json").unlink(missing_ok=True)
    return gw.proc.stop(sig)


def test_gateway_replicas_sigterm_drains_and_sigkill_costs_only_the_requests_in_flight(
        controller, rbac, namespace, mocks):
    stable, candidate = mocks("openai"), mocks("openai")
    # Slow enough answers that every replica always has requests in flight.
    for m in (stable, candidate):
        m.faults(latency_ms=300)
    apply(namespace, backend("stable", stable, "gpt-4o"), backend("candidate", candidate, "gpt-4.1"))
    # Probes every 0.5 s below: 2 s of serving while not ready covers a few of them.
    delay = ("--shutdown-delay", "2s")
    gateways = [start_gateway(rbac["gateway"], namespace, *delay, job=f"gateway-{namespace}-{i}") for i in (1, 2)]
    g1, g2 = gateways
    try:
        start_migration(namespace, g1, [("stable", 100)], [("candidate", 100)], rollout())
        served(g2, "chat")
        # Probed every 0.5 s, as an endpoint controller or a mesh would notice no sooner: a
        # replica must keep taking requests for a while after it reports not ready.
        client = Replicas([g1, g2], probe_every=0.5)
        load = Load(client, "chat", rps=40, threads=16)
        try:
            time.sleep(3)
            # One request pinned to g1 and certainly in flight when SIGTERM arrives.
            pinned = {}
            pin = threading.Thread(target=lambda: pinned.update(r=g1.post(
                "/v1/chat/completions", timeout=10,
                json={"model": "chat", "messages": [{"role": "user", "content": "in flight"}]})))
            pin.start()
            time.sleep(0.1)
            t_term = time.monotonic()
            g1.proc.proc.send_signal(signal.SIGTERM)
            term_code = g1.proc.proc.wait(60)
            t_drained = time.monotonic()
            pin.join(10)
            # A rolling update: the replacement joins the balancer once it is ready.
            g3 = start_gateway(rbac["gateway"], namespace, *delay, job=f"gateway-{namespace}-3")
            gateways.append(g3)
            served(g3, "chat")
            client.add(g3)
            time.sleep(3)
            t_kill = time.monotonic()
            g2.proc.proc.send_signal(signal.SIGKILL)
            g2.proc.proc.wait(10)
            t_dead = time.monotonic()
            time.sleep(3)
        finally:
            load.stop()
        st = status(namespace)
    finally:
        for gw in gateways:
            stop_gateway(gw)

    records = load.between()
    on = {g.url: [r for r in records if r.target == g.url] for g in gateways}
    in_flight_term = [r for r in on[g1.url] if r.start < t_term <= r.end]
    after_term = [r for r in on[g1.url] if r.start >= t_term]
    in_flight_kill = [r for r in on[g2.url] if r.start < t_dead and r.end >= t_kill]
    told = client.down_since.get(g2.url)
    failed = [r for r in records if not r.ok]
    figure(f"gateway SIGTERM: exited {term_code} after draining {t_drained - t_term:.2f}s; "
           f"{len(in_flight_term) + 1} requests in flight on it, {len(after_term)} sent to it after the signal, "
           f"{sum(1 for r in on[g1.url] if not r.ok)} of its requests failed")
    figure(f"gateway SIGKILL: {len(in_flight_kill)} requests in flight on it, "
           f"{sum(1 for r in on[g2.url] if not r.ok)} of its requests failed; the client stopped sending to it "
           f"{(told - t_kill) if told else float('nan'):.2f}s after the kill")
    summarize("gateway replicas SIGTERM, replaced, SIGKILL: whole run", records)

    assert pinned["r"].status_code == 200, "the draining gateway finished the request it had in flight"
    assert term_code == 0
    assert not [r for r in on[g1.url] if not r.ok], "SIGTERM costs no request"
    assert told is not None, "the client noticed the killed replica"
    # Only the requests the killed replica held when it died, or that the client sent it
    # before it could know, may fail; nothing sent to the other replicas does.
    stray = [r for r in failed if r.target != g2.url or r.end < t_kill or r.start >= told]
    assert not stray, f"failures beyond the killed replica's requests: {stray[:5]}"
    ok = [r for r in records if r.ok]
    share = sum(1 for r in ok if r.backend == "candidate") / len(ok)
    assert abs(share - 0.10) <= 0.03, f"every replica applies the route's weights: candidate got {share:.3f}"
    assert st["step"] == 1 and shares(st["weights"]) == {"stable": 0.9, "candidate": 0.1}


PROVIDER_FAULTS = {
    "down": None,  # the process is killed: connections are refused
    "slow": {"latency_ms": 3000},  # beyond the backend's 1 s time to first byte
    "rate_limited": {"rate_limit_rate": 1.0, "retry_after": 2},
    "streams_cut_before_content": {"cut_stream_after": 0},
    "streams_cut_mid_content": {"cut_stream_after": 2},
}


@pytest.mark.parametrize("fault", PROVIDER_FAULTS)
def test_a_failing_primary_provider_with_a_healthy_fallback_tier(fault, controller, namespace, gateway, mocks):
    primary, candidate, fallback = mocks("openai"), mocks("openai"), mocks("anthropic")
    apply(namespace, backend("primary", primary, "gpt-4o", timeout="1s"), backend("candidate", candidate, "gpt-4.1"),
          backend("fallback", fallback, "claude-sonnet-4-5"))
    before = start_migration(namespace, gateway, [("primary", 100)], [("candidate", 100)], rollout(),
                             fallback=["fallback"])
    # Enough threads that 40 requests/s go on while some wait out a slow provider.
    load = Load(gateway, "chat", rps=40, threads=40, stream_every=2)
    try:
        time.sleep(2)
        t_fault = time.monotonic()
        if PROVIDER_FAULTS[fault] is None:
            primary.proc.stop(signal.SIGKILL)
        else:
            primary.reset()
            primary.faults(**PROVIDER_FAULTS[fault])
        time.sleep(6)
    finally:
        load.stop()
    hits = primary.stats() if PROVIDER_FAULTS[fault] else None
    st = status(namespace)

    def already_started(r):
        return r.stream and r.started

    counts = summarize(f"primary provider {fault}", load.between(t_fault), excluded=already_started)
    if hits is not None:
        figure(f"primary provider {fault}: it received {hits['total']} requests, faults {hits['by_fault']}")
        assert hits["total"] > 0, "the fault was exercised"
    assert counts["requests"] >= 150
    assert counts["success_rate"] >= 0.999, counts
    if fault == "streams_cut_mid_content":
        assert hits["by_fault"].get("cut_stream", 0) >= 1
    # The primary's trouble is not the candidate's: the migration holds its step.
    assert st["phase"] != "RolledBack", st.get("conditions")
    assert st["step"] == 1 and shares(st["weights"]) == shares(before["weights"])


def endpoint_pods(namespace, name):
    ib = kubectl_json("get", "ib", name, namespace=namespace)
    return {e["pod"]: e["address"] for e in (ib.get("status") or {}).get("endpoints") or []}


def chat_served(address):
    try:
        return requests.get(f"http://{address}/_mock/stats", timeout=2).json()["by_path"].get("/v1/chat/completions", 0)
    except requests.RequestException:
        return 0


WARMUP = 5


def test_self_hosted_pods_deleted_mid_migration(controller, namespace, gateway, mocks):
    """Pods are deleted one at a time, as a node drain honouring the backend's
    PodDisruptionBudget would: the target always keeps a warmed pod serving, so the
    migration holds its step (rolling back would be a false rollback) and never jumps.

    Bound: at least 99.9% of requests succeed. A request can fail only when the gateway sends
    it to a pod whose server has just gone; that is a connection error before any byte reached
    the client, which the gateway fails over to the healthy fallback tier (well within its
    retry budget), so no request should fail at all; 99.9% leaves room for a request in flight
    on a pod at the instant its server stopped (the mock answers in about a millisecond)."""
    stable, spare = mocks("openai"), mocks("openai")
    kubectl("apply", "-f", "-", namespace=namespace, input=json.dumps({
        "apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": {"name": "llama-h100"},
        "spec": {"selfHosted": {"runtime": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "replicas": 2,
                                "gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"}},
                 "warmup": {"requests": WARMUP}}}))
    apply(namespace, backend("stable", stable, "gpt-4o"), backend("fallback", spare, "gpt-4o-mini"))
    wait_slice_ready(namespace, "llama-h100", 2)
    wait_until(lambda: len(endpoint_pods(namespace, "llama-h100")) == 2, timeout=60, what="2 warmed endpoints")
    # A pod whose server stops before its endpoint is withdrawn costs the target a few
    # connection failures (failed over, so clients see none); failureLimit 1, as the route in
    # examples/ has, tolerates the one analysis that may see them.
    before = start_migration(namespace, gateway, [("stable", 100)], [("llama-h100", 100)],
                             rollout(steps=[50, 100], failureLimit=1), fallback=["fallback"])
    assert shares(before["weights"]) == {"stable": 0.5, "llama-h100": 0.5}
    load = Load(gateway, "chat")
    sampler = StatusSampler(namespace)
    rounds = []
    try:
        time.sleep(3)
        t_first = time.monotonic()
        for pod in sorted(endpoint_pods(namespace, "llama-h100")):
            t_delete = time.monotonic()
            kubectl("delete", "pod", pod, "--wait=false", namespace=namespace)

            def replaced():
                pods = endpoint_pods(namespace, "llama-h100")
                new = [a for p, a in pods.items() if p != pod and p not in [r["pod"] for r in rounds]]
                return len(pods) == 2 and pod not in pods and new and new
            new = wait_until(replaced, timeout=90, interval=0.25, what=f"a warmed replacement for {pod}")
            t_replaced = time.monotonic()
            # The gateway sends the replacement live traffic beyond the controller's warm-up.
            # (kwok may give it the deleted pod's IP; once it is listed, the server there is its.)
            warmed = chat_served(new[0])
            wait_until(lambda: chat_served(new[0]) > warmed, timeout=60, what="traffic on the replacement")
            t_serving = time.monotonic()
            rounds.append({"pod": pod, "replaced": t_replaced - t_delete, "serving": t_serving - t_delete})
        time.sleep(1)
        failovers = metric_sum(gateway, "switchyard_failovers_total", **{"from": "llama-h100"})
        time.sleep(3)
        failovers_later = metric_sum(gateway, "switchyard_failovers_total", **{"from": "llama-h100"})
    finally:
        load.stop()
        sampler.stop()
    for r in rounds:
        figure(f"pod {r['pod']} deleted: warmed replacement listed after {r['replaced']:.1f}s, "
               f"serving live traffic after {r['serving']:.1f}s")
    figure(f"pods deleted: the gateway failed over {failovers:.0f} attempts from vanished pods")
    counts = summarize("self-hosted pods deleted", load.between(t_first))
    assert counts["success_rate"] >= 0.999, counts
    assert counts["backends"].get("llama-h100", 0) >= 0.3 * counts["requests"], \
        "the target kept serving its share through the deletions"
    assert failovers_later == failovers, "the gateway stopped sending to the deleted pods"
    gone = {r["pod"] for r in rounds}
    assert not gone & set(endpoint_pods(namespace, "llama-h100")), "deleted pods are no longer listed"
    figure(f"pods deleted: the route went through {sampler.steps()}")
    sampler.assert_no_jump()
    seen = {tuple(sorted(shares(st.get("weights")).items())) for _, st in sampler.samples}
    assert seen == {(("llama-h100", 0.5), ("stable", 0.5))}, \
        f"the split held its step (a pod replaced is no reason to roll back): {sampler.steps()}"
