#!/usr/bin/env python3
"""The controller and gateway at scale: N ModelRoutes and N external InferenceBackends in one
namespace. Measures the time from apply until all are settled (routes with status.weights,
backends Ready), controller and gateway RSS, reconcile latency p50/p99 (the controller's
histogram), API requests per second while settling and in an idle window (which must hold
zero writes to switchyard objects), and the time for a new route to be served by the
gateway at that size. Prints a markdown section and saves it to e2e/bench/results-scale.md.
Needs the local cluster (`bash e2e/cluster/up.sh`) and a built binary (SWITCHYARD_BINARY).

    python3 e2e/bench/scale.py [--routes 10000] [--idle 60] [--changes 20]
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "e2e" / "tests"))
import conftest  # noqa: E402  (cluster env, process helpers)

NS = "scale"
WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY", "CREATE", "UPDATE"}


def objects(first, n, base_url):
    items = []
    for i in range(first, first + n):
        items.append({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
                      "metadata": {"name": f"b{i}"},
                      "spec": {"external": {"dialect": "openai", "baseUrl": f"{base_url}/v1", "model": "m"}}})
        items.append({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute", "metadata": {"name": f"r{i}"},
                      "spec": {"backends": [{"name": f"b{i}", "weight": 1}]}})
    return {"apiVersion": "v1", "kind": "List", "items": items}


def create(first, n, base_url, chunk=500, parallel=4):
    """kubectl create in parallel chunks (plain create: no last-applied annotation)."""
    def one(start):
        conftest.kubectl("create", "-f", "-", namespace=NS,
                         input=json.dumps(objects(start, min(chunk, first + n - start), base_url)))
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(first, first + n, chunk)))


def settled_counts():
    out = json.loads(subprocess.run(["kubectl", "-n", NS, "get", "modelroutes,inferencebackends", "-o", "json"],
                                    capture_output=True, text=True, check=True).stdout)["items"]
    routes = sum(1 for o in out if o["kind"] == "ModelRoute" and (o.get("status") or {}).get("weights"))
    ready = sum(1 for o in out if o["kind"] == "InferenceBackend" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in (o.get("status") or {}).get("conditions", [])))
    return routes, ready


def apiserver_requests():
    """apiserver_request_total summed by (verb, group): all clients."""
    totals = {}
    for line in conftest.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(kv.split("=", 1) for kv in line[line.index("{") + 1:line.rindex("}")].split(","))
        key = (labels.get("verb", "").strip('"'), labels.get("group", "").strip('"'))
        totals[key] = totals.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def delta(after, before):
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def rps(d, seconds):
    reads = sum(v for (verb, _), v in d.items() if verb not in WRITE_VERBS)
    writes = sum(v for (verb, _), v in d.items() if verb in WRITE_VERBS)
    sy_writes = sum(v for (verb, group), v in d.items() if verb in WRITE_VERBS and group == "switchyard.dev")
    return reads / seconds, writes / seconds, sy_writes


def rss(pid):
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        k, _, v = line.partition(":")
        if k in ("VmHWM", "VmRSS"):
            fields[k] = int(v.split()[0]) / 1024
    return fields


def histogram_quantiles(url, name, kind, qs=(0.5, 0.99)):
    buckets = []
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name}_bucket{{") and f'kind="{kind}"' in line:
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    if not buckets or buckets[-1][1] == 0:
        return {q: None for q in qs}
    total, out = buckets[-1][1], {}
    for q in qs:
        rank, prev_le, prev_c = q * total, 0.0, 0.0
        for le, c in buckets:
            if c >= rank:
                # Linear interpolation inside the bucket, as Prometheus' histogram_quantile.
                out[q] = prev_le if le == float("inf") else prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1)
                break
            prev_le, prev_c = le, c
    return out


def counter(url, series):
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def served_by(gw_url, model):
    try:
        r = requests.post(f"{gw_url}/v1/chat/completions", timeout=2, json={
            "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    except requests.RequestException:
        return None
    return r.headers.get("x-switchyard-backend") if r.status_code == 200 else None


def new_route_latencies(gw_url, changes, base_url):
    """A new route per change, on an existing backend: from the API server accepting it until
    the gateway answers for it."""
    out = []
    for i in range(changes):
        model = f"wc-{i}-{int(time.time())}"
        conftest.kubectl("create", "-f", "-", namespace=NS, input=json.dumps({
            "apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute", "metadata": {"name": model},
            "spec": {"backends": [{"name": "b0", "weight": 1}]}}))
        start = time.perf_counter()  # kubectl returned: the object is stored
        while not served_by(gw_url, model):
            if time.perf_counter() - start > 60:
                raise AssertionError(f"route {model} not served after 60s")
            time.sleep(0.02)
        out.append(time.perf_counter() - start)
    return out


def save_section(path, text):
    """Replaces the section of `path` whose heading is `text`'s first line up to its first
    digit, keeping the others (scale.py and rollback.py share one results file)."""
    title = text.split("\n", 1)[0]
    prefix = title[:next((i for i, ch in enumerate(title) if ch.isdigit()), len(title))]
    sections = path.read_text().split("\n## ") if path.exists() else []
    sections = ["## " + s.removeprefix("## ").strip() + "\n" for s in sections if s.strip()]
    kept = [s for s in sections if not s.startswith(prefix)]
    path.write_text("\n".join([*kept, text.strip() + "\n"]))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def versions():
    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except Exception:  # noqa: BLE001  (a missing tool is reported as such)
            return "unknown"
    server = json.loads(conftest.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    return {"kubernetes": server, "rustc": first_line(["rustc", "--version"]),
            "switchyard": first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=10000, help="routes, and as many external backends")
    ap.add_argument("--idle", type=float, default=60, help="steady-state window, seconds")
    ap.add_argument("--changes", type=int, default=20, help="new routes timed until the gateway serves them")
    ap.add_argument("--timeout", type=float, default=900, help="give up settling after this many seconds")
    ap.add_argument("--out", default=str(REPO / "e2e" / "bench" / "results-scale.md"))
    args = ap.parse_args()

    conftest.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    conftest.kubectl("wait", "--for=condition=Established", "crd/modelroutes.switchyard.dev", "--timeout=60s")
    conftest.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", "--timeout=600s")
    conftest.kubectl("create", "namespace", NS)
    mock = conftest.Mock("openai")
    # Production lease timings: the suite's 4 s lease, renewed within 2.7 s, is lost while the
    # API server absorbs thousands of creates on two cores, and the controller exits.
    conftest.CONTROLLER_FLAGS = ["--prometheus-url", conftest.CLUSTER["PROMETHEUS_URL"]]
    controller = conftest.start_controller()
    gw = conftest.start_gateway(conftest.CLUSTER["KUBECONFIG"], NS)
    try:
        conftest.wait_until(lambda: requests.get(f"{controller.url}/readyz", timeout=1).status_code == 200,
                            timeout=60, what="controller ready")
        api0 = apiserver_requests()
        t0 = time.perf_counter()
        create(0, args.routes, mock.url)
        applied = time.perf_counter() - t0
        last = (0, 0)
        while last != (args.routes, args.routes):
            if time.perf_counter() - t0 > args.timeout:
                raise SystemExit(f"not settled after {args.timeout}s: {last}")
            time.sleep(2)
            last = settled_counts()
            print(f"  {time.perf_counter() - t0:6.1f}s: {last[0]} routes with weights, {last[1]} backends Ready",
                  flush=True)
        settle = time.perf_counter() - t0
        api1 = apiserver_requests()
        # The gateway has every route once it answers for the last one.
        conftest.wait_until(lambda: served_by(gw.url, f"r{args.routes - 1}"), timeout=120, what="last route served")
        gw_all = time.perf_counter() - t0
        settle_read_rps, settle_write_rps, settle_sy_writes = rps(delta(api1, api0), settle)

        time.sleep(5)  # the tail of the settle: last status writes, watch events
        idle0, recon0 = apiserver_requests(), counter(controller.url, 'switchyard_controller_reconciles_total{kind="modelroute"}')
        time.sleep(args.idle)
        idle_d = delta(apiserver_requests(), idle0)
        recon_idle = counter(controller.url, 'switchyard_controller_reconciles_total{kind="modelroute"}') - recon0
        idle_read_rps, idle_write_rps, idle_sy_writes = rps(idle_d, args.idle)

        c_rss, g_rss = rss(controller.proc.pid), rss(gw.proc.proc.pid)
        q_route = histogram_quantiles(controller.url, "switchyard_controller_reconcile_duration_seconds", "modelroute")
        q_backend = histogram_quantiles(controller.url, "switchyard_controller_reconcile_duration_seconds",
                                        "inferencebackend")
        lat = new_route_latencies(gw.url, args.changes, mock.url)
        c_rss_after, g_rss_after = rss(controller.proc.pid), rss(gw.proc.proc.pid)

        def ms(x):
            return "n/a" if x is None else f"{x * 1e3:.1f} ms"
        v = versions()
        idle_writes = {f"{verb} {group or 'core'}": n for (verb, group), n in idle_d.items() if verb in WRITE_VERBS}
        binary = os.environ.get("SWITCHYARD_BINARY", "debug build")
        lines = [
            f"## The controller at {args.routes:,} routes",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
            f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; Kubernetes {v['kubernetes']}, "
            f"{v['rustc']}, switchyard {v['switchyard']} ({binary}).",
            f"Command: `python3 e2e/bench/scale.py --routes {args.routes} --idle {args.idle:g} --changes {args.changes}`"
            " (on `bash e2e/cluster/up.sh`; `make bench` runs it).",
            "",
            f"{args.routes:,} ModelRoutes and {args.routes:,} external InferenceBackends in one namespace, created "
            f"with `kubectl create` in parallel chunks ({applied:.1f} s to create).",
            "",
            "| measure | value | goal |",
            "| --- | --- | --- |",
            f"| create → all routes with weights, all backends Ready | {settle:.1f} s | ≤ 120 s |",
            f"| create → gateway serves the last route | {gw_all:.1f} s | |",
            f"| controller RSS (VmRSS / VmHWM) | {c_rss_after['VmRSS']:.0f} MB / {c_rss_after['VmHWM']:.0f} MB | ≤ 150 MB |",
            f"| gateway RSS (VmRSS / VmHWM) | {g_rss_after['VmRSS']:.0f} MB / {g_rss_after['VmHWM']:.0f} MB | ≤ 200 MB |",
            f"| route reconcile p50 / p99 | {ms(q_route[0.5])} / {ms(q_route[0.99])} | |",
            f"| backend reconcile p50 / p99 | {ms(q_backend[0.5])} / {ms(q_backend[0.99])} | |",
            f"| API rps while settling (reads / writes, all clients) | {settle_read_rps:.0f} / {settle_write_rps:.0f} | |",
            f"| writes to switchyard objects while settling | {settle_sy_writes:.0f} | |",
            f"| API rps idle, {args.idle:g} s window (reads / writes, all clients) | "
            f"{idle_read_rps:.1f} / {idle_write_rps:.1f} | |",
            f"| writes to switchyard objects in the idle window | {idle_sy_writes:.0f} | 0 |",
            f"| route reconciles in the idle window | {recon_idle:.0f} | |",
            f"| new route → served by the gateway, p50 / p99 / max ({args.changes} routes) | "
            f"{pct(lat, 0.5) * 1e3:.0f} / {pct(lat, 0.99) * 1e3:.0f} / {max(lat) * 1e3:.0f} ms | p99 ≤ 1,000 ms |",
            "",
            f"Idle-window writes by verb and group: {json.dumps(idle_writes)}"
            " (leases are the cluster's own heartbeats and the controller's leader election).",
            "",
        ]
        text = "\n".join(lines)
        print("\n" + text)
        save_section(pathlib.Path(args.out), text)
    finally:
        gw.proc.stop()
        controller.stop()
        mock.stop()
        conftest.kubectl("delete", "namespace", NS, "--wait=false", check=False)


if __name__ == "__main__":
    main()
