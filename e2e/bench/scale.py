#!/usr/bin/env python3
"""The controller and the gateway at configuration size: N ModelRoutes and N external
InferenceBackends applied at once on the local cluster, plus S self-hosted backends (each with
its route) on GPU pools grown to G simulated nodes, their pods served by the cluster's one
pod host process and warmed up with a few requests each. Measures the time until every route
has its split in effect, controller and gateway memory, reconcile latency, the API server's
requests per second while settling and in steady state (steady state must write nothing),
the time from applying a new route until the gateway serves it, and the gateway's CPU per
request with N routes against the same with 10.

    python3 e2e/bench/scale.py [--routes 10000] [--self-hosted 500] [--gpu-nodes 200] [--clients 16]
                               [--out FILE]

The binary is $SWITCHYARD_BINARY, else $CARGO_TARGET_DIR/debug/switchyard: point it at the
release build for figures worth recording.
"""

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time

import requests
import yaml

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "e2e" / "tests"))
sys.path.insert(0, str(HERE))
import conftest  # noqa: E402
import measure  # noqa: E402
import upstream  # noqa: E402
from measure import Cpu, bench_env, peak_rss_mb, wrk  # noqa: E402

NS = f"scale-{os.getpid()}"  # a fresh namespace per run: the last one may still be terminating
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


def self_hosted(first, count, warmup):
    """Self-hosted backends `s<i>` (one pod, one GPU; H100 and L40S pools alternately), each
    with a route `rs<i>`."""
    items = []
    for i in range(first, first + count):
        product = "NVIDIA-H100-80GB-HBM3" if i % 2 == 0 else "NVIDIA-L40S"
        items.append({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend",
                      "metadata": {"name": f"s{i}", "namespace": NS},
                      "spec": {"selfHosted": {"runtime": "vllm", "model": f"org/self-hosted-{i}", "replicas": 1,
                                              "gpu": {"count": 1, "product": product}},
                               "warmup": {"requests": warmup}}})
        items.append({"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute",
                      "metadata": {"name": f"rs{i}", "namespace": NS},
                      "spec": {"model": f"self-hosted-{i}", "backends": [{"name": f"s{i}", "weight": 1}]}})
    return items


def gpu_nodes(count):
    """Grows the GPU pools to `count` nodes, half H100 (8 GPUs), half L40S (4 GPUs); returns the
    names of the nodes added (the cluster's own two of each stay)."""
    h100, l40s = max(2, count // 2), max(2, count - count // 2)
    manifests = subprocess.run(["bash", str(REPO / "e2e" / "cluster" / "nodes.sh"), str(h100), str(l40s)],
                               capture_output=True, text=True, check=True).stdout
    conftest.kubectl("apply", "-f", "-", input=manifests)
    return [f"gpu-h100-{i}" for i in range(3, h100 + 1)] + [f"gpu-l40s-{i}" for i in range(3, l40s + 1)]


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


PLURALS = {"InferenceBackend": "inferencebackends", "ModelRoute": "modelroutes"}


def api_session():
    """The API server's address and a client-certificate session, from the admin kubeconfig."""
    cfg = yaml.safe_load(pathlib.Path(conftest.CLUSTER["KUBECONFIG"]).read_text())
    cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE in the environment would replace the cluster's CA
    s.cert = (user["client-certificate"], user["client-key"])
    s.verify = cluster["certificate-authority"]
    return cluster["server"], s


def create(items, workers=16):
    """Creates `items` with `workers` clients in parallel, each on its own connection, POSTing
    straight to the API server: one kubectl process sends one object at a time (~37 writes/s),
    which measured the client rather than the controller."""
    local = threading.local()

    def post(obj):
        if not hasattr(local, "s"):
            local.server, local.s = api_session()
        group, version = obj["apiVersion"].split("/")
        url = (f"{local.server}/apis/{group}/{version}/namespaces/{obj['metadata']['namespace']}/"
               f"{PLURALS[obj['kind']]}")
        for attempt in range(5):
            r = local.s.post(url, json=obj, timeout=60)
            if r.status_code in (201, 409):  # 409: created by an earlier attempt that timed out
                return
            if r.status_code not in (429, 500, 503, 504):
                break
            time.sleep(0.2 * (attempt + 1))
        raise RuntimeError(f"creating {obj['kind']} {obj['metadata']['name']}: {r.status_code} {r.text[:300]}")

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(post, items):
            pass


def listed(plural):
    """Every object of `plural` in the namespace, read straight from the API (kubectl's own
    formatting of 20,000 objects every 2 s would load the cores the controller runs on)."""
    global _LIST
    if "_LIST" not in globals():
        _LIST = api_session()
    server, s = _LIST
    r = s.get(f"{server}/apis/switchyard.dev/v1alpha1/namespaces/{NS}/{plural}", timeout=120)
    r.raise_for_status()
    return r.json()["items"]


def ready_routes():
    return sum(1 for mr in listed("modelroutes") if (mr.get("status") or {}).get("weightsSummary"))


def ready_pods():
    out = subprocess.run(["kubectl", "get", "pods", "-n", NS, "--field-selector=status.phase=Running", "-o",
                          "name"], capture_output=True, text=True, timeout=120).stdout
    return len(out.split())


def ready_backends():
    def ready(ib):
        return any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (ib.get("status") or {}).get("conditions", []))
    return sum(1 for ib in listed("inferencebackends") if ready(ib))


def progress(what, count, want, t0, every=15):
    """A predicate for wait_until that also prints how far it got every `every` seconds, so
    a run cut short still tells what it reached."""
    last = [0.0]

    def done():
        got = count()
        if time.monotonic() - last[0] >= every or got == want:
            last[0] = time.monotonic()
            print(f"  {time.monotonic() - t0:6.1f} s: {got:,} / {want:,} {what}", flush=True)
        return got == want
    return done


def controller_counts(url):
    """The controller's reconciles, conflicts (409 on a write: decided from a stale object)
    and skipped reconciles of versions it had already written over, summed over kinds."""
    out = {"reconciles": 0.0, "conflicts": 0.0, "superseded": 0.0}
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("switchyard_controller_reconciles_total{"):
            out["reconciles"] += float(line.split()[-1])
        elif line.startswith("switchyard_controller_reconcile_errors_total{") and 'error="conflict"' in line:
            out["conflicts"] += float(line.split()[-1])
        elif line.startswith("switchyard_controller_reconciles_superseded_total{"):
            out["superseded"] += float(line.split()[-1])
    return out


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


def rebuilds(url):
    """The gateway's routing-table rebuilds so far: how many, and the seconds they took."""
    count = total = 0.0
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("switchyard_gateway_config_rebuild_seconds_count"):
            count = float(line.split()[-1])
        elif line.startswith("switchyard_gateway_config_rebuild_seconds_sum"):
            total = float(line.split()[-1])
    return count, total


def quiet(url, still=5.0, timeout=180):
    """Waits until the gateway has not rebuilt its routing table for `still` seconds: the
    status writes that follow a change (a migration's steps, Ready conditions) each trigger a
    rebuild, and a CPU figure taken meanwhile would measure the settling, not requests."""
    last, since, deadline = rebuilds(url)[0], time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = rebuilds(url)[0]
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            return True
    return False


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
    ap.add_argument("--self-hosted", type=int, default=500, help="self-hosted backends (each with a route)")
    ap.add_argument("--gpu-nodes", type=int, default=200, help="simulated GPU nodes for them")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up requests per pod")
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--clients", type=int, default=16, help="parallel API clients creating the objects")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--cleanup-timeout", type=int, default=900, help="seconds to wait for the namespace to go")
    ap.add_argument("--out")
    args, _ = ap.parse_known_args()
    report = []

    def say(line=""):
        print(line, flush=True)
        report.append(line)

    work = tempfile.mkdtemp(prefix="switchyard-scale-")
    conftest.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    conftest.kubectl("create", "namespace", NS)  # a leftover from an interrupted run would skew every figure
    up = upstream.static_upstream(work, UPSTREAM_PORT, CORE_LOAD)
    added_nodes = gpu_nodes(args.gpu_nodes) if args.self_hosted else []
    measure.production_controller_flags(conftest)
    controller = conftest.start_controller()
    gw = conftest.start_gateway(conftest.CLUSTER["KUBECONFIG"], NS, key="bench")
    subprocess.run(["taskset", "-a", "-p", "-c", str(CORE_GATEWAY), str(gw.proc.proc.pid)], capture_output=True)
    try:
        body = {"model": "model-0", "messages": [{"role": "user", "content": "hi"}]}
        apply(objects(0, 10))
        conftest.wait_until(lambda: ready_routes() == 10, timeout=60, what="10 routes")
        conftest.wait_until(lambda: gw.post("/v1/chat/completions", json=body, timeout=5)
                            .status_code == 200, timeout=30, what="served")
        quiet(gw.admin_url)
        small = wrk(f"{gw.url}/v1/chat/completions", body, args.duration, 32, CORE_LOAD, [gw.proc.proc.pid],
                    probe=lambda: rebuilds(gw.admin_url))

        n, sh = args.routes, args.self_hosted
        items = self_hosted(0, sh, args.warmup) + objects(10, n - 10)
        api0, t0 = api_requests(), time.monotonic()
        create(items, args.clients)
        applied = time.monotonic() - t0
        print(f"created {len(items):,} objects in {applied:.1f} s", flush=True)
        conftest.wait_until(progress("routes settled", ready_routes, n + sh, t0), timeout=1800, interval=2,
                            what=f"{n + sh} routes settled")
        settle = time.monotonic() - t0
        conftest.wait_until(progress("backends Ready", ready_backends, n + sh, t0), timeout=900, interval=2,
                            what=f"{n + sh} backends Ready")
        settle_all = time.monotonic() - t0
        counts = controller_counts(controller.url)
        pods = ready_pods()
        api1 = api_requests()
        settling = rate(api0, api1, settle_all)

        time.sleep(5)
        api2, v2, t2 = api_requests(), versions(), time.monotonic()
        time.sleep(60)
        steady = rate(api2, api_requests(), time.monotonic() - t2)
        v3 = versions()
        rewritten = sorted(k for k, v in v2.items() if v3.get(k) != v)

        recon, recon_n = histogram_quantiles(controller.url, "switchyard_controller_reconcile_duration_seconds")
        # A new route, from apply to the gateway answering for it: controller reconcile,
        # status write, the gateway's watch and its table rebuild.
        visible = []
        for k in range(args.changes):
            i = n + k
            t = time.monotonic()
            apply(objects(i, 1))
            b = {"model": f"model-{i}", "messages": [{"role": "user", "content": "hi"}]}
            while gw.post("/v1/chat/completions", json=b, timeout=5).status_code != 200:
                time.sleep(0.005)
            visible.append(time.monotonic() - t)
        visible.sort()

        # A weight change on an existing route at this size: its split moves to another
        # backend in one step; from the write until the gateway answers from the new backend.
        server, session = api_session()
        moved, stuck = [], 0
        for k in range(args.changes):
            i, j = 10 + k, 10 + args.changes + k
            patch = {"spec": {"backends": [{"name": f"b{j}", "weight": 1}], "rollout": {"steps": [100]}}}
            b = {"model": f"model-{i}", "messages": [{"role": "user", "content": "hi"}]}
            t = time.monotonic()
            session.patch(f"{server}/apis/switchyard.dev/v1alpha1/namespaces/{NS}/modelroutes/r{i}",
                          data=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"},
                          timeout=30).raise_for_status()
            while time.monotonic() - t < 30:
                r = gw.post("/v1/chat/completions", json=b, timeout=5)
                if r.headers.get("x-switchyard-backend") == f"b{j}":
                    moved.append(time.monotonic() - t)
                    break
                time.sleep(0.005)
            else:
                stuck += 1
        moved.sort()

        was_quiet = quiet(gw.admin_url)
        large = wrk(f"{gw.url}/v1/chat/completions", {**body, "model": f"model-{n // 2}"}, args.duration, 32,
                    CORE_LOAD, [gw.proc.proc.pid], probe=lambda: rebuilds(gw.admin_url))
        c_rss = peak_rss_mb([controller.proc.pid])
        g_rss = peak_rss_mb([gw.proc.proc.pid])

        say(f"### {n + sh:,} ModelRoutes, {n:,} external and {sh:,} self-hosted InferenceBackends, applied at once")
        say()
        if sh:
            say(f"The self-hosted backends run one pod each (one GPU, H100 and L40S pools alternately) on "
                f"{args.gpu_nodes} simulated GPU nodes, warmed up with {args.warmup} requests per pod; "
                f"each has its own route. {pods} pods Running at the end.")
            say()
        say("| measure | value | goal |")
        say("|---|---|---|")
        say(f"| create ({(n + sh) * 2:,} objects, {args.clients} parallel API clients) | {applied:.1f} s | |")
        say(f"| from apply until every route has its split in effect | {settle:.1f} s | ≤ 120 s |")
        say(f"| … and every backend Ready (self-hosted: pods scheduled, serving, warmed up) | "
            f"{settle_all:.1f} s | |")
        say(f"| controller peak RSS | {c_rss:.0f} MB | ≤ 150 MB |")
        say(f"| gateway peak RSS | {g_rss:.0f} MB | ≤ 200 MB |")
        say(f"| reconcile duration p50 / p99 (histogram bucket bound, {recon_n:,.0f} reconciles) | "
            f"≤ {recon[0] * 1e3:.0f} ms / ≤ {recon[1] * 1e3:.0f} ms | |")
        objs = 2 * (n + sh)
        say(f"| reconciles per object until all Ready ({objs:,} objects) / write conflicts (409) / "
            f"reconciles skipped as already written over | {counts['reconciles'] / objs:.2f} / "
            f"{counts['conflicts']:,.0f} / {counts['superseded']:,.0f} | |")
        say(f"| API requests/s while settling: reads / writes | {settling[0]:.0f} / {settling[1]:.0f} | |")
        say(f"| API requests/s in steady state (60 s): reads / writes | {steady[0]:.1f} / {steady[1]:.2f} "
            f"({steady[2]:.0f} writes, all clients) | |")
        say(f"| Switchyard objects written in steady state (60 s) | {len(rewritten)}"
            f"{' (' + ', '.join(rewritten[:8]) + (' …' if len(rewritten) > 8 else '') + ')' if rewritten else ''}"
            f" | 0 |")
        say(f"| new route applied → served by the gateway, p50 / p99 of {len(visible)} | "
            f"{visible[len(visible) // 2] * 1e3:.0f} ms / {visible[-1] * 1e3:.0f} ms | ≤ 1 s p99 |")
        if moved:
            say(f"| weight change (split moved to another backend in one step) → gateway answers from it, "
                f"p50 / p99 of {len(moved)}{f' ({stuck} not within 30 s)' if stuck else ''} | "
                f"{moved[len(moved) // 2] * 1e3:.0f} ms / {moved[-1] * 1e3:.0f} ms | ≤ 1 s p99 |")
        else:
            say(f"| weight change → gateway answers from the new backend | none of {stuck} within 30 s | ≤ 1 s p99 |")
        say(f"| gateway CPU per request, 10 routes → {n:,} routes (wrk, 32 connections) | "
            f"{small['cpu_ms_per_1k'] / 1e3:.3f} ms → {large['cpu_ms_per_1k'] / 1e3:.3f} ms "
            f"({large['cpu_ms_per_1k'] / small['cpu_ms_per_1k']:.2f}×) | within 10% |")
        say(f"| gateway rps, 10 routes → {n:,} routes | {small['rps']:,.0f} → {large['rps']:,.0f} | |")
        for label, run in (("10 routes", small), (f"{n:,} routes", large)):
            (c0, s0), (c1, s1) = run["probe"]
            say(f"| routing-table rebuilds during the {label} run / their time | {c1 - c0:.0f} / "
                f"{(s1 - s0) * 1e3:.0f} ms of {run['cpu_s'] * 1e3:.0f} ms CPU | 0 |")
        if not was_quiet:
            say("| (the gateway kept rebuilding its table: no 5 s without a rebuild within 180 s) | | |")
        say()
        say("The API server's figures count every client (kube-controller-manager, the scheduler, kwok's "
            "node heartbeats, the controller's Lease renewals); Switchyard's own writes show as "
            "resourceVersion changes of its objects, counted separately.")
        say()
        say(f"Environment: {bench_env()}")
    finally:
        gw.proc.stop()
        up.stop()
        # Deleted while the controller runs: it releases its backends' finalizers, so the
        # namespace goes and a rerun on the same cluster starts from nothing.
        subprocess.run(["kubectl", "delete", "namespace", NS, "--wait=true", f"--timeout={args.cleanup_timeout}s"],
                       capture_output=True)
        controller.stop()
        if added_nodes:
            conftest.kubectl("delete", "node", "--wait=false", *added_nodes, check=False)
    if args.out:
        pathlib.Path(args.out).write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
