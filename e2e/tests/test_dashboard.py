"""The Grafana dashboard the chart ships (charts/switchyard/dashboards/switchyard.json) shows
real data: with traffic through a gateway — a migration step, failovers, streams — every
PromQL expression in it (panels, annotations, template variables) is run against the test
Prometheus with the template variables substituted as Grafana substitutes them, and each must
be valid and return data. And the chart renders it as a ConfigMap for Grafana's sidecar."""

import json
import math
import re
import subprocess
import time

import pytest
import requests
import yaml

from conftest import CLUSTER, REPO, kubectl, wait_until
from migration import status, watch_steps
from test_gateway_sdk import apply, backend, route, served
from traffic import Load

DASHBOARD = REPO / "charts" / "switchyard" / "dashboards" / "switchyard.json"
PROM = CLUSTER["PROMETHEUS_URL"]
# What Grafana's graph panels ask for at most (a panel about 1000 pixels wide).
MAX_DATA_POINTS = 1000


def expressions(dashboard):
    """Every PromQL expression of the dashboard, as (where, kind, expression); kind is
    `panel`, `annotation` or `variable`. A panel or target without an expression fails."""
    found = []

    def panels(items):
        for p in items:
            if p.get("type") == "row":
                panels(p.get("panels", []))
                continue
            targets = p.get("targets") or []
            assert targets, f"panel {p.get('title')!r} has no query"
            for t in targets:
                assert t.get("expr"), f"panel {p.get('title')!r} target {t.get('refId')} has no expr"
                found.append((f"panel {p['title']!r}", "panel", t["expr"]))

    panels(dashboard["panels"])
    for a in dashboard["annotations"]["list"]:
        if a.get("datasource", {}).get("type") == "prometheus":
            found.append((f"annotation {a['name']!r}", "annotation", a["expr"]))
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            assert q == v["definition"], f"variable {v['name']}: definition and query differ"
            found.append((f"variable ${v['name']}", "variable", q))
    return found


def duration(seconds):
    """A duration as Grafana writes interval variables: whole seconds, or minutes when exact."""
    seconds = max(1, math.ceil(seconds))
    return f"{seconds // 60}m" if seconds % 60 == 0 else f"{seconds}s"


def grafana_intervals(range_seconds, scrape_seconds):
    """$__interval, $__rate_interval and $__range for a dashboard showing `range_seconds`,
    as Grafana computes them: the range over the panel's data points, no finer than the data
    source's scrape interval; the rate interval is that plus one scrape, at least four."""
    interval = max(range_seconds / MAX_DATA_POINTS, scrape_seconds)
    rate_interval = max(interval + scrape_seconds, 4 * scrape_seconds)
    return {"__interval": duration(interval), "__rate_interval": duration(rate_interval),
            "__range": duration(range_seconds)}


def regex_value(values):
    """A multi-value variable inside a regex matcher, as Grafana formats it: one value escaped,
    several as an escaped alternation; the All option is the variable's allValue."""
    if values == "$__all":
        return ".*"
    escaped = [re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr, variables):
    """Replaces $name and ${name} the way Grafana does, longest names first."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def prometheus(path, **params):
    r = requests.get(f"{PROM}{path}", params=params, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{params}: {r.status_code} {body}"
    return body["data"]


def label_values(query):
    """Runs a Grafana `label_values(selector, label)` variable query: the selector's series now."""
    m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query.strip(), re.S)
    assert m, f"not a label_values query: {query}"
    selector, label = m.groups()
    result = prometheus("/api/v1/query", query=selector)["result"]
    return sorted({s["metric"][label] for s in result if label in s["metric"]})


def scrape_interval_seconds():
    config = yaml.safe_load(prometheus("/api/v1/status/config")["yaml"])
    text = config["global"]["scrape_interval"]
    return int(text[:-1]) * {"s": 1, "m": 60}[text[-1]]


def finite(result):
    return [s for s in result if math.isfinite(float(s["value"][1]))]


@pytest.fixture
def busy_gateway(controller, namespace, gateway, mocks):
    """A route mid-migration (75/25 at its first step) whose stable backend fails every fourth
    request over to a fallback tier, with steady traffic, every third request streamed."""
    primary, canary, spare = mocks("openai"), mocks("openai"), mocks("anthropic")
    # Deterministic: never five failures in a row, so the primary is not ejected.
    primary.faults(error_rate=0.25, error_status=503, deterministic=True)
    price = {"inputPerMillionTokens": "2.50", "outputPerMillionTokens": "10.00"}
    roll = {"steps": [50, 100], "stepDuration": "10m", "analysis": {"interval": "10m"}}
    apply(namespace, backend("primary", primary, "gpt-4o", pricing=price),
          backend("canary", canary, "llama", pricing=price),
          backend("spare", spare, "claude-haiku-4-5", pricing=price),
          route("chat", [("primary", 100)], fallback=["spare"], rollout=roll))
    served(gateway, "chat")
    wait_until(lambda: status(namespace).get("phase") == "Stable", timeout=30, what="stable route")
    started = time.time()
    load = Load(gateway, "chat", rps=12, threads=3, stream_every=3)
    try:
        # Prometheus picks up a new target within a few seconds; the step must come after its
        # first scrapes of this gateway for the change to show.
        wait_until(lambda: prometheus("/api/v1/query", query=f'switchyard_gateway_config_generation{{component="{gateway.job}"}}')["result"],
                   timeout=30, interval=1, what="Prometheus scraping the gateway")
        time.sleep(3)
        # A migration step: the weights change, the gateway rebuilds its routing table.
        apply(namespace, route("chat", [("primary", 50), ("canary", 50)], fallback=["spare"], rollout=roll))
        watch_steps(namespace, lambda st: st.get("step") == 1, timeout=60)
        yield started, load
    finally:
        load.stop()
    failed = [r for r in load.records if not r.ok]
    assert not failed, f"the fallback tier answers what the primary fails: {failed[:3]}"


def test_every_dashboard_query_returns_data(busy_gateway, namespace):
    started, load = busy_gateway
    dashboard = json.loads(DASHBOARD.read_text())
    found = expressions(dashboard)
    kinds = {k for _, k, _ in found}
    assert kinds == {"panel", "annotation", "variable"}, kinds
    scrape = scrape_interval_seconds()

    # The variables as a user picks them: this namespace and route from the values the
    # dashboard offers, then every backend it offers (and, separately, the All option).
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"

    def offered(name, chosen):
        return label_values(substitute(variables[name]["query"]["query"], chosen))

    wait_until(lambda: namespace in offered("namespace", {}), timeout=60, interval=1, what="namespace offered")
    chosen = {"namespace": regex_value([namespace])}
    assert offered("route", chosen) == ["chat"]
    chosen["route"] = regex_value(["chat"])
    backends = wait_until(lambda: (b := offered("backend", chosen)) == ["canary", "primary", "spare"] and b,
                          timeout=60, interval=1, what="every backend offered")
    selections = {
        "each backend selected": {**chosen, "backend": regex_value(backends)},
        "All": {"namespace": regex_value("$__all"), "route": regex_value("$__all"),
                "backend": regex_value("$__all")},
    }

    def run_all():
        """Each expression's problem (None when it returned data), per selection."""
        now = time.time()
        problems = {}
        for selection, values in selections.items():
            intervals = grafana_intervals(now - started, scrape)
            for where, kind, expr in found:
                if kind == "variable":
                    continue
                q = substitute(expr, {**values, **intervals})
                if kind == "annotation":
                    # Grafana evaluates an annotation over the dashboard's time range.
                    data = prometheus("/api/v1/query_range", query=q, start=started, end=now,
                                      step=intervals["__interval"])
                    points = [v for s in data["result"] for _, v in s["values"]]
                    ok = any(float(v) > 0 for v in points)
                else:
                    data = prometheus("/api/v1/query", query=q, time=now)
                    assert data["resultType"] == "vector", f"{where}: {data['resultType']}"
                    ok = bool(finite(data["result"]))
                problems[(selection, where)] = None if ok else f"no data: {q}\n{data['result']}"
        return problems

    # Every expression is valid PromQL: a query Prometheus rejects fails here, with its error.
    run_all()
    # Prometheus scrapes every 2 s; give the newest series (streams, failovers) a few scrapes.
    last = {}

    def all_have_data():
        last.clear()
        last.update(run_all())
        return not any(last.values())

    try:
        wait_until(all_have_data, timeout=60, interval=2, what="every dashboard query to return data")
    except AssertionError:
        bad = {k: v for k, v in last.items() if v}
        raise AssertionError(f"{len(bad)} queries without data:\n" + "\n".join(f"{k}: {v}" for k, v in bad.items())) from None

    # The split panel divides each backend's attempts by its route's: the shares sum to one,
    # and the stable backend (75% at step 1) leads the canary (25%, plus the primary's failovers).
    # Its window is the rate interval (8 s here), so it shows the step once that has passed.
    split = next(e for w, _, e in found if w == "panel 'Traffic split'")

    def shares():
        intervals = grafana_intervals(time.time() - started, scrape)
        q = substitute(split, {**selections["each backend selected"], **intervals})
        return {s["metric"]["backend"]: float(s["value"][1]) for s in prometheus("/api/v1/query", query=q)["result"]}

    share = wait_until(lambda: (s := shares()) and s.get("spare", 0) == 0 and s, timeout=30, interval=1,
                       what="the split of step 1 alone in the window")
    assert abs(sum(share.values()) - 1) < 0.01, share
    assert share["primary"] > share["canary"] > 0.15, share


def helm_template(*args):
    return subprocess.run(
        [CLUSTER["HELM"], "template", "switchyard", str(REPO / "charts" / "switchyard"),
         "--namespace", "switchyard-system", "--kube-version", "1.33.0",
         "--show-only", "templates/grafana-dashboard.yaml", *args],
        capture_output=True, text=True)


def test_the_chart_ships_the_dashboard_for_grafanas_sidecar_when_asked():
    off = helm_template()
    assert off.returncode != 0 and "could not find template" in off.stderr, \
        f"no ConfigMap by default:\n{off.stdout}{off.stderr}"

    on = helm_template("--set", "grafana.dashboards.enabled=true",
                       "--set", "grafana.dashboards.namespace=monitoring",
                       "--set", "grafana.dashboards.annotations.grafana_folder=Switchyard")
    assert on.returncode == 0, on.stderr
    cm = yaml.safe_load(on.stdout)
    assert cm["kind"] == "ConfigMap"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Switchyard"}
    assert json.loads(cm["data"]["switchyard.json"]) == json.loads(DASHBOARD.read_text())
    # The API server accepts what the chart renders (server-side dry run).
    kubectl("apply", "--dry-run=server", "-n", "default", "-f", "-",
            input=on.stdout.replace("namespace: monitoring", "namespace: default"))
