#!/usr/bin/env python3
"""The controller and the gateway at configuration size: N ModelRoutes and N external
InferenceBackends applied at once on the local cluster. Measures the time until every route
has its split in effect, controller and gateway memory, reconcile latency, the API server's
requests per second while settling and in steady state (steady state must write nothing),
the time from applying a new route until the gateway serves it, and the gateway's CPU per
request with N routes against the same with 10.

    python3 e2e/bench/scale.py [--routes 10000] [--out FILE]
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import requests

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "e2e" / "tests"))
sys.path.insert(0, str(HERE))
import conftest  # noqa: E402
import measure  # noqa: E402
import upstream  # noqa: E402
from measure import Cpu, bench_env, peak_rss_mb, wrk  # noqa: E402

NS = "scale"
UPSTREAM_PORT = 18111
CORE_GATEWAY, CORE_LOAD = 1, 0
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


def objects(first, count):
    items = []
    for i in range(first, first + count):
        items.append({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
                      "metadata": {"name": f"b{i}", "namespace": NS},
                      "spec": {"external": {"dialect": "openai", "model": "upstream-model",
                                            "baseUrl": f"http://127.0.0.1:{UPSTREAM_PORT}/openai-json/v1"}}})
        items.append({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute",
                      "metadata": {"name": f"r{i}", "namespace": NS},
                      "spec": {"model": f"model-{i}", "backends": [{"name": f"b{i}", "weight": 1}]}})
    return items


def apply(items, batch=2000):
    """Server-side apply in large batches, several at once, as a GitOps sync would."""
    files = []
    for k in range(0, len(items), batch):
        f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"apiVersion": "v1", "kind": "List", "items": items[k:k + batch]}, f)
        f.close()
        files.append(f.name)
    procs = [subprocess.Popen(["kubectl", "apply", "--server-side", "-f", f], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for f in files]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise RuntimeError(err[-1000:])


def ready_routes():
    out = subprocess.run(["kubectl", "get", "mr", "-n", NS, "-o",
                          "jsonpath={range .items[*]}{.status.weightsSummary}{\"\\n\"}{end}"],
                         capture_output=True, text=True, timeout=120).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def ready_backends():
    out = subprocess.run(["kubectl", "get", "ib", "-n", NS, "-o",
                          "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}"],
                         capture_output=True, text=True, timeout=120).stdout
    return sum(1 for line in out.splitlines() if line.strip() == "True")


def versions():
    """resourceVersion of every route and backend in the namespace."""
    out = {}
    for kind in ("mr", "ib"):
        text = subprocess.run(["kubectl", "get", kind, "-n", NS, "-o",
                               "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}"],
                              capture_output=True, text=True, timeout=120).stdout
        out.update((f"{kind}/{k}", v) for k, v in (ln.split("=", 1) for ln in text.splitlines() if "=" in ln))
    return out


def api_requests():
    """apiserver_request_total summed by verb."""
    text = conftest.kubectl("get", "--raw", "/metrics").stdout
    out = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            verb = re.search(r'verb="([A-Z]+)"', line).group(1)
            out[verb] = out.get(verb, 0) + float(line.split()[-1])
    return out


def rate(before, after, seconds):
    reads = sum(v for k, v in after.items() if k not in WRITE_VERBS) - \
        sum(v for k, v in before.items() if k not in WRITE_VERBS)
    writes = sum(after.get(k, 0) - before.get(k, 0) for k in WRITE_VERBS)
    return reads / seconds, writes / seconds, writes


def histogram_quantiles(url, name, qs=(0.5, 0.99)):
    """Quantiles of a histogram (all series summed) from its cumulative buckets."""
    buckets = {}
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = re.search(r'le="([^"]+)"', line).group(1)
            buckets[float(le)] = buckets.get(float(le), 0) + float(line.split()[-1])
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    out = []
    for q in qs:
        want = q * total
        out.append(next((b for b in bounds if buckets[b] >= want), float("inf")))
    return out, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routes", type=int, default=10000)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--out")
    args, _ = ap.parse_known_args()
    report = []

    def say(line=""):
        print(line, flush=True)
        report.append(line)

    work = tempfile.mkdtemp(prefix="switchyard-scale-")
    conftest.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    conftest.kubectl("create", "namespace", NS, check=False)
    up = upstream.static_upstream(work, UPSTREAM_PORT, CORE_LOAD)
    measure.production_controller_flags(conftest)
    controller = conftest.start_controller()
    gw = conftest.start_gateway(conftest.CLUSTER["KUBECONFIG"], NS)
    subprocess.run(["taskset", "-a", "-p", "-c", str(CORE_GATEWAY), str(gw.proc.proc.pid)], capture_output=True)
    try:
        body = {"model": "model-0", "messages": [{"role": "user", "content": "hi"}]}
        apply(objects(0, 10))
        conftest.wait_until(lambda: ready_routes() == 10, timeout=60, what="10 routes")
        conftest.wait_until(lambda: requests.post(f"{gw.url}/v1/chat/completions", json=body, timeout=5)
                            .status_code == 200, timeout=30, what="served")
        small = wrk(f"{gw.url}/v1/chat/completions", body, args.duration, 32, CORE_LOAD, [gw.proc.proc.pid])

        n = args.routes
        items = objects(10, n - 10)
        api0, t0 = api_requests(), time.monotonic()
        apply(items)
        applied = time.monotonic() - t0
        conftest.wait_until(lambda: ready_routes() == n, timeout=1800, interval=2, what=f"{n} routes settled")
        settle = time.monotonic() - t0
        conftest.wait_until(lambda: ready_backends() == n, timeout=600, interval=2, what=f"{n} backends Ready")
        settle_all = time.monotonic() - t0
        api1 = api_requests()
        settling = rate(api0, api1, settle_all)

        time.sleep(5)
        api2, v2, t2 = api_requests(), versions(), time.monotonic()
        time.sleep(60)
        steady = rate(api2, api_requests(), time.monotonic() - t2)
        v3 = versions()
        rewritten = sum(1 for k, v in v2.items() if v3.get(k) != v)

        recon, recon_n = histogram_quantiles(controller.url, "switchyard_controller_reconcile_duration_seconds")
        # A new route, from apply to the gateway answering for it: controller reconcile,
        # status write, the gateway's watch and its table rebuild.
        visible = []
        for k in range(args.changes):
            i = n + k
            t = time.monotonic()
            apply(objects(i, 1))
            b = {"model": f"model-{i}", "messages": [{"role": "user", "content": "hi"}]}
            while requests.post(f"{gw.url}/v1/chat/completions", json=b, timeout=5).status_code != 200:
                time.sleep(0.005)
            visible.append(time.monotonic() - t)
        visible.sort()

        large = wrk(f"{gw.url}/v1/chat/completions", {**body, "model": f"model-{n // 2}"}, args.duration, 32,
                    CORE_LOAD, [gw.proc.proc.pid])
        c_rss = peak_rss_mb([controller.proc.pid])
        g_rss = peak_rss_mb([gw.proc.proc.pid])

        say(f"### {n:,} ModelRoutes and {n:,} external InferenceBackends, applied at once")
        say()
        say("| measure | value | goal |")
        say("|---|---|---|")
        say(f"| apply ({n * 2:,} objects, server-side, 2,000 per request) | {applied:.1f} s | |")
        say(f"| from apply until every route has its split in effect | {settle:.1f} s | ≤ 120 s |")
        say(f"| … and every backend Ready | {settle_all:.1f} s | |")
        say(f"| controller peak RSS | {c_rss:.0f} MB | ≤ 150 MB |")
        say(f"| gateway peak RSS | {g_rss:.0f} MB | ≤ 200 MB |")
        say(f"| reconcile duration p50 / p99 (histogram bucket bound, {recon_n:,.0f} reconciles) | "
            f"≤ {recon[0] * 1e3:.0f} ms / ≤ {recon[1] * 1e3:.0f} ms | |")
        say(f"| API requests/s while settling: reads / writes | {settling[0]:.0f} / {settling[1]:.0f} | |")
        say(f"| API requests/s in steady state (60 s): reads / writes | {steady[0]:.1f} / {steady[1]:.2f} "
            f"({steady[2]:.0f} writes, all clients) | |")
        say(f"| Switchyard objects written in steady state (60 s) | {rewritten} | 0 |")
        say(f"| new route applied → served by the gateway, p50 / p99 of {len(visible)} | "
            f"{visible[len(visible) // 2] * 1e3:.0f} ms / {visible[-1] * 1e3:.0f} ms | ≤ 1 s p99 |")
        say(f"| gateway CPU per request, 10 routes → {n:,} routes (wrk, 32 connections) | "
            f"{small['cpu_ms_per_1k'] / 1e3:.3f} ms → {large['cpu_ms_per_1k'] / 1e3:.3f} ms "
            f"({large['cpu_ms_per_1k'] / small['cpu_ms_per_1k']:.2f}×) | within 10% |")
        say(f"| gateway rps, 10 routes → {n:,} routes | {small['rps']:,.0f} → {large['rps']:,.0f} | |")
        say()
        say("The API server's figures count every client (kube-controller-manager, the scheduler, kwok's "
            "node heartbeats, the controller's Lease renewals); Switchyard's own writes show as "
            "resourceVersion changes of its objects, counted separately.")
        say()
        say(f"Environment: {bench_env()}")
    finally:
        gw.proc.stop()
        controller.stop()
        up.stop()
        conftest.kubectl("delete", "namespace", NS, "--wait=false", check=False)
    if args.out:
        pathlib.Path(args.out).write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
