"""The evidence a migration is judged on beyond errors and p95: checks relative to the
stable backends measured in the same window (time to first token, output tokens)."""

import time

from migration import events, status, watch_steps
from test_gateway_sdk import apply, backend, route, served
from conftest import wait_until
from traffic import Load


def rollout(**analysis):
    return {"steps": [50, 100], "stepDuration": "60s",
            "analysis": {"interval": "5s", "minRequests": 5, "maxErrorRate": 0.02,
                         "failureLimit": 0, "maxHold": "10m", **analysis}}


def test_a_ttft_regression_alone_rolls_back_against_the_stable_backend(controller, namespace, gateway, mocks):
    # Same total duration on both sides (p95 unchanged), no errors; only the first token is
    # late on the candidate: the stable one paces its words, the candidate holds them back.
    stable, candidate = mocks("openai"), mocks("openai")
    stable.faults(inter_token_ms=150)
    candidate.faults(ttft_ms=300)
    roll = rollout(relative={"ttftP95": {"maxIncrease": 0.015, "floor": "50ms"},
                             "latencyP95": {"maxIncrease": 0.25, "floor": "150ms"}})
    apply(namespace, backend("openai", stable, "gpt-4o"), backend("candidate", candidate, "llama"),
          route("chat", [("openai", 100)], rollout=roll))
    served(gateway, "chat")
    wait_until(lambda: status(namespace).get("phase") == "Stable", timeout=20, what="stable route")
    load = Load(gateway, "chat", rps=30, threads=6, stream_every=1)
    try:
        time.sleep(3)
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        watch_steps(namespace, lambda st: st.get("phase") == "RolledBack", timeout=90)
    finally:
        load.stop()
    assert not [r for r in load.records if not r.ok][:1], "no request failed"
    st = status(namespace)
    checks = {c["name"]: c for c in st["lastAnalysis"]["checks"]}
    ttft = checks["ttft-p95-vs-stable"]
    assert ttft["verdict"] == "Fail", checks
    assert ttft["backend"] == "candidate"
    # Both sides are in status: the candidate's TTFT and the stable one's, in the same window.
    assert ttft["value"] >= 0.25 and ttft["baseline"] < 0.05, ttft
    assert ttft["threshold"].startswith("<= ")
    # Nothing else regressed: errors and p95 pass, against the stable side too.
    assert checks["error-rate"]["verdict"] == "Pass"
    latency = checks["latency-p95-vs-stable"]
    assert latency["verdict"] == "Pass" and latency["baseline"] > 0.25, latency
    stalled = next(c for c in st["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "RolledBack" and "ttft-p95-vs-stable of candidate" in stalled["message"]
    assert events(namespace, "AnalysisFailed") and events(namespace, "RolledBack")
