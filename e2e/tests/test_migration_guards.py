"""Migrations that must end on their own in conditions that used to freeze them: a canary the
gateway cannot send requests to (cooling down after 429s) rolls back instead of holding."""

import time

from test_gateway_sdk import apply, route
from test_migrations import Load, events, rollout, setup, status, watch_steps


def test_a_canary_that_cannot_take_requests_rolls_back_instead_of_holding(controller, namespace, gateway, mocks):
    # Every request to the candidate is rate limited with a long Retry-After: the gateway
    # cools it down, so almost every pick that lands on it finds it unavailable. Before, those
    # picks were recorded nowhere, the analysis saw too little traffic, and the step held for
    # maxHold (10 minutes here); now they are errors of the candidate and the step fails.
    stable, target, roll = setup(namespace, gateway, mocks, {"rate_limit_rate": 1.0, "retry_after": 120},
                                 rollout(step_duration="60s"))
    load = Load(gateway, "chat")
    try:
        time.sleep(3)
        apply(namespace, route("chat", [("candidate", 100)], rollout=roll))
        seen = watch_steps(namespace, lambda st: st.get("phase") == "RolledBack", timeout=90)
    finally:
        load.stop()
    print(f"phases: {[s[1:3] for s in seen]}")
    st = status(namespace)
    check = next(c for c in st["lastAnalysis"]["checks"] if c["name"] == "error-rate")
    assert (check["backend"], check["verdict"]) == ("candidate", "Fail"), check
    assert check["value"] >= 0.9, check
    assert st["weights"] == [{"name": "openai", "weight": 1000}]
    unavailable = gateway.metric("switchyard_requests_total", namespace=namespace, route="chat",
                                 backend="candidate", provider="openai", outcome="unavailable", code="cooling_down")
    print(f"candidate: {target.chat_requests()} requests reached it, {unavailable:.0f} picks found it cooling down")
    assert unavailable >= 10
    assert target.chat_requests() <= 3, "a cooling-down backend is not sent requests"
    # Its share went to the other backend of the split: clients barely noticed.
    codes = [code for _, _, code in load.answers]
    ok = sum(1 for c in codes if c == 200) / len(codes)
    print(f"clients: {len(codes)} requests, success {ok:.4f}")
    assert ok >= 0.99
    assert events(namespace, "RolledBack")
