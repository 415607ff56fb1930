"""The shadow after a cutover: once a migration is promoted, the gateway keeps copying traffic
to the old backend for `postCutoverShadow.duration`, the controller compares its answers with
the new split's live traffic, and the route ends with an Event saying whether the old backend
can be decommissioned or what drifted. Real gateway, Prometheus and controller; the providers
are mocks, and the old one is made wordier after the cutover."""

import time

from migration import command, events, start_migration, status, watch_steps
from test_gateway_sdk import apply, backend
from conftest import kubectl_json, wait_until
from traffic import Load

SHADOW_SECONDS = 16


def rollout():
    # The migration holds at its first step until promoted by command, so the test controls
    # when the cutover happens; the shadow then judges every 2 s over Prometheus' minimum
    # window (4 scrapes of 2 s).
    return {"steps": [50, 100], "stepDuration": "10m",
            "analysis": {"interval": "2s", "minRequests": 5, "maxErrorRate": 0.05, "failureLimit": 0,
                         "maxHold": "10m", "relative": {"outputTokens": {"maxDifference": 0.2, "floor": 2}}},
            "postCutoverShadow": {"percent": 100, "duration": f"{SHADOW_SECONDS}s"}}


def cut_over(namespace, gateway, mocks):
    """Route `chat` moves openai → candidate and is promoted; returns (old mock, load)."""
    old, new = mocks("openai"), mocks("openai")
    apply(namespace, backend("openai", old, "gpt-4o"), backend("candidate", new, "llama"))
    start_migration(namespace, gateway, [("openai", 100)], [("candidate", 100)], rollout())
    # Room for longer answers: the default cap of 4 tokens would hide most of a drift.
    load = Load(gateway, "chat", rps=25, threads=4, max_tokens=64)
    command(namespace, "promote-full")
    watch_steps(namespace, lambda st: (st.get("postCutover") or {}).get("phase") == "Shadowing", timeout=30)
    return old, load


def shadow(namespace):
    return status(namespace).get("postCutover") or {}


def test_the_post_cutover_shadow_finds_a_token_count_drift_and_says_so(controller, namespace, gateway, mocks):
    old, load = cut_over(namespace, gateway, mocks)
    try:
        # After the cutover the old backend grew wordier: 12 more words per answer.
        old.faults(extra_output_words=12)
        copies_before = old.stats()["by_path"].get("/v1/chat/completions", 0)
        st = status(namespace)
        assert st["phase"] == "Stable" and st["stable"] == [{"name": "candidate", "weight": 100}], st
        assert st["mirror"] == {"percent": 100, "backends": ["openai"]}, st
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True", ready

        # Discrepancies show in status while the shadow runs, naming the check and the old backend.
        def drifted():
            return [d for d in shadow(namespace).get("discrepancies", [])
                    if d["check"] == "output-tokens-vs-stable" and d["backend"] == "openai"]
        wait_until(drifted, timeout=SHADOW_SECONDS + 10, what="an output-token discrepancy in status")
        d = drifted()[-1]
        assert d["value"] > d["baseline"] * 1.5, d
        assert old.stats()["by_path"].get("/v1/chat/completions", 0) > copies_before, "the old backend gets copies"

        wait_until(lambda: events(namespace, "ShadowDrift"), timeout=SHADOW_SECONDS + 15, what="ShadowDrift")
    finally:
        load.stop()
    (message,) = events(namespace, "ShadowDrift")
    assert "old backend openai drifted from the new split" in message, message
    assert "output-tokens-vs-stable: openai answered" in message and "longer than candidate" in message, message
    assert event_types(namespace, "ShadowDrift") == {"Warning"}
    st = status(namespace)
    pc = st["postCutover"]
    assert pc["phase"] == "Drifted" and pc["finishedAt"], pc
    assert any(d["check"] == "output-tokens-vs-stable" and d["backend"] == "openai" and d["count"] >= 1
               for d in pc["drift"]), pc
    # Nothing was rolled back: the cutover is done; the gateway stopped copying.
    assert st["phase"] == "Stable" and st["stable"] == [{"name": "candidate", "weight": 100}], st
    assert "mirror" not in st, st
    assert not events(namespace, "RolledBack")
    assert "Drifted" in st["history"][-1]["postCutover"], st["history"][-1]
    # Callers only ever got the new backend's answers.
    assert all(r.ok for r in load.records), [r for r in load.records if not r.ok][:3]


def test_a_clean_post_cutover_shadow_says_the_old_backend_can_be_decommissioned(controller, namespace, gateway,
                                                                                   mocks):
    started = time.monotonic()
    _, load = cut_over(namespace, gateway, mocks)
    try:
        wait_until(lambda: events(namespace, "ShadowCompleted"), timeout=SHADOW_SECONDS + 15,
                   what="ShadowCompleted")
    finally:
        load.stop()
    (message,) = events(namespace, "ShadowCompleted")
    assert message.startswith("old backend openai matched the new split (candidate) over 16s ("), message
    assert message.endswith("analyses): it can be decommissioned"), message
    pc = shadow(namespace)
    assert pc["phase"] == "Matched" and pc["analyses"] >= 1 and not pc.get("discrepancies"), pc
    assert not events(namespace, "ShadowDrift")
    assert time.monotonic() - started >= SHADOW_SECONDS


def event_types(namespace, reason, name="chat"):
    out = kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name},reason={reason}",
                       namespace=namespace)
    return {e.get("type") for e in out["items"]}
