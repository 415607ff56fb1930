"""Cost comparison end to end: traffic through the gateway to two mock providers priced
differently (per input and output token, and per total token), a migration between them,
and `status.cost` and `kubectl switchyard cost` checked against the tokens the mocks counted
times their pricing."""

import json
import subprocess
import time

from conftest import CLUSTER, switchyard_binary, wait_until
from migration import status, watch_steps
from test_dashboard import prometheus
from test_gateway_sdk import apply, backend, route, served
from traffic import Load

OPENAI_PRICE = {"inputPerMillionTokens": "2.50", "outputPerMillionTokens": "10.00"}
TOTAL_PRICE = {"totalPerMillionTokens": "0.60"}


def priced(stats, price):
    """What the mock's counted tokens cost at `price`."""
    i, o = stats["input_tokens"], stats["output_tokens"]
    if "totalPerMillionTokens" in price:
        return (i + o) * float(price["totalPerMillionTokens"]) / 1e6
    return (i * float(price["inputPerMillionTokens"]) + o * float(price["outputPerMillionTokens"])) / 1e6


def close(measured, expected, what):
    assert expected > 0 and abs(measured - expected) <= 0.01 * expected, f"{what}: {measured} vs {expected}"


def test_status_and_the_cost_command_match_the_mocks_tokens_times_pricing(controller, namespace, gateway, mocks):
    stable, candidate = mocks("openai"), mocks("anthropic")
    roll = {"steps": [50, 100], "stepDuration": "15s",
            "analysis": {"interval": "5s", "minRequests": 5, "maxErrorRate": 0.05, "failureLimit": 0, "maxHold": "10m"}}
    apply(namespace, backend("openai", stable, "gpt-4o", pricing=OPENAI_PRICE),
          backend("claude", candidate, "claude-haiku-4-5", pricing=TOTAL_PRICE),
          route("chat", [("openai", 100)], rollout=roll))
    served(gateway, "chat")
    wait_until(lambda: status(namespace).get("phase") == "Stable", timeout=20, what="stable route")
    wait_until(lambda: prometheus("/api/v1/query", query=f'switchyard_gateway_config_generation{{component="{gateway.job}"}}')["result"],
               timeout=30, interval=1, what="Prometheus scraping the gateway")
    load = Load(gateway, "chat", rps=20, threads=2, stream_every=3)
    try:
        time.sleep(3)
        apply(namespace, route("chat", [("claude", 100)], rollout=roll))

        def compared(st):
            cost = st.get("cost") or {}
            return st.get("step") == 1 and all(
                (cost.get(side) or {}).get("requests", 0) >= 5 and "per1kRequests" in cost[side]
                for side in ("stable", "candidate"))
        watch_steps(namespace, compared, timeout=90)
    finally:
        load.stop()
    failed = [r for r in load.records if not r.ok]
    assert not failed, failed[:3]
    cost = status(namespace)["cost"]
    assert cost["stable"]["backends"] == ["openai"] and cost["candidate"]["backends"] == ["claude"], cost

    # The mocks answer every request alike, so any window's ratios are the whole run's.
    counted = {"openai": (stable.stats(), OPENAI_PRICE, stable.chat_requests()),
               "claude": (candidate.stats(), TOTAL_PRICE, candidate.chat_requests())}
    for side, name in (("stable", "openai"), ("candidate", "claude")):
        stats, price, n = counted[name]
        expected = priced(stats, price)
        close(cost[side]["per1kRequests"], expected / n * 1000, f"{side} per 1k requests")
        close(cost[side]["perMillionTokens"], expected / (stats["input_tokens"] + stats["output_tokens"]) * 1e6,
              f"{side} per 1M tokens")
    assert cost["candidate"]["perMillionTokens"] < cost["stable"]["perMillionTokens"]

    # The command over the whole run, once Prometheus has scraped the last counts.
    time.sleep(5)
    r = subprocess.run([str(switchyard_binary()), "cost", "chat", "-n", namespace, "--window", "10m",
                        "-o", "json", "--prometheus-url", CLUSTER["PROMETHEUS_URL"]],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    rows = {row["backend"]: row for row in report["rows"]}
    assert set(rows) == {"openai", "claude"}, report
    for name, (stats, price, n) in counted.items():
        row = rows[name]
        close(row["requests"], n, f"{name} requests")
        close(row["inputTokens"], stats["input_tokens"], f"{name} input tokens")
        close(row["outputTokens"], stats["output_tokens"], f"{name} output tokens")
        close(row["cost"], priced(stats, price), f"{name} cost")
    close(report["total"]["cost"], sum(priced(s, p) for s, p, _ in counted.values()), "route cost")

    table = subprocess.run([str(switchyard_binary()), "cost", "chat", "-n", namespace, "--window", "10m",
                            "--prometheus-url", CLUSTER["PROMETHEUS_URL"]], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "PER 1K REQ" in table.stdout and "TOTAL" in table.stdout, table.stdout + table.stderr


def test_the_cost_command_says_where_to_find_prometheus(controller, namespace):
    apply(namespace, route("chat", [("openai", 100)]))
    env = {k: v for k, v in __import__("os").environ.items() if k != "SWITCHYARD_PROMETHEUS_URL"}
    r = subprocess.run([str(switchyard_binary()), "cost", "chat", "-n", namespace], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode != 0 and "--prometheus-url" in r.stderr and "prometheusUrl" in r.stderr, r.stderr
