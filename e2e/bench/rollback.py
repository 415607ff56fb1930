#!/usr/bin/env python3
"""Time to rollback: a migration target starts failing every request at a step (route with
`failureLimit: 0`). Measures, separately, from the target's first bad response
(a) until the gateway stops picking it (outlier ejection or the split) — the first moment
after which the target receives no request for a second while traffic flows, and
(b) until the route is RolledBack and the gateway sends the target nothing more,
against the bound scrape interval + analysis interval + 5 s. Repeats and prints the max.
Appends its markdown section to e2e/bench/results-scale.md.
Needs the local cluster (`bash e2e/cluster/up.sh`) and a built binary (SWITCHYARD_BINARY).

    python3 e2e/bench/rollback.py [--runs 3] [--interval 5s] [--step 20]
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time

import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "e2e" / "tests"))
sys.path.insert(0, str(REPO / "e2e" / "bench"))
import conftest  # noqa: E402  (cluster env, process helpers)
from scale import save_section, versions  # noqa: E402
from traffic import Load  # noqa: E402

SCRAPE_INTERVAL_S = 2.0  # e2e/cluster/up.sh's Prometheus scrape_interval
QUIET_S = 1.0


def seconds(duration):
    return float(duration.rstrip("s"))


def doc(kind, name, spec):
    return {"apiVersion": "switchyard.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def status(ns):
    return conftest.kubectl_json("get", "mr", "chat", namespace=ns).get("status", {})


def apply(ns, *docs):
    conftest.kubectl("apply", "-f", "-", namespace=ns, input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                          "items": list(docs)}))


def target_hits(target):
    """(time, count) of requests the target mock has received, sampled now."""
    return time.monotonic(), target.chat_requests()


def one_run(ns, gw, interval, step, rps):
    stable, target = conftest.Mock("openai"), conftest.Mock("openai")
    rollout = {"steps": [step, 100], "stepDuration": "10m",
               "analysis": {"interval": interval, "minRequests": 5, "maxErrorRate": 0.02,
                            "failureLimit": 0, "maxHold": "10m"}}

    def backend(name, mock):
        return doc("InferenceBackend", name, {"external": {"dialect": "openai", "baseUrl": f"{mock.url}/v1",
                                                            "model": "m"}})
    load = None
    try:
        apply(ns, backend("stable", stable), backend("candidate", target),
              doc("ModelRoute", "chat", {"backends": [{"name": "stable", "weight": 100}], "rollout": rollout}))
        conftest.wait_until(lambda: status(ns).get("phase") == "Stable", timeout=60, what="stable route")
        load = Load(gw, "chat", rps=rps)
        apply(ns, doc("ModelRoute", "chat", {"backends": [{"name": "candidate", "weight": 100}], "rollout": rollout}))
        # The target serves its share of the first step, healthy, for a moment.
        conftest.wait_until(lambda: target.chat_requests() >= 10, timeout=60, what="target receives traffic")
        target.faults(error_rate=1.0)
        base = target.chat_requests()
        # First bad response: the first request the target receives once it fails them all.
        while (now := target_hits(target))[1] == base:
            time.sleep(0.01)
        first_bad = now[0]

        count, last_hit, stopped_at, rolled_back_at = now[1], first_bad, None, None
        deadline = first_bad + 120
        while time.monotonic() < deadline:
            t, c = target_hits(target)
            if c != count:
                count, last_hit = c, t
            # Stopped picking: no request reached the target for QUIET_S since its last one.
            if stopped_at is None and t - last_hit >= QUIET_S:
                stopped_at = last_hit
            if rolled_back_at is None and status(ns).get("phase") == "RolledBack":
                rolled_back_at = time.monotonic()
            if rolled_back_at is not None and t - max(rolled_back_at, last_hit) >= 3:
                break
            time.sleep(0.05)
        if rolled_back_at is None:
            raise SystemExit(f"no rollback within 120s; last status {json.dumps(status(ns))}")
        return {"eject_s": (stopped_at or last_hit) - first_bad,
                "rolled_back_s": max(rolled_back_at, last_hit) - first_bad,
                "status_s": rolled_back_at - first_bad}
    finally:
        if load:
            load.stop()
        conftest.kubectl("delete", "mr,ib", "--all", "--wait=true", namespace=ns, check=False)
        stable.stop()
        target.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--interval", default="5s", help="analysis interval")
    ap.add_argument("--step", type=int, default=20, help="first step's weight for the target, percent")
    ap.add_argument("--rps", type=int, default=40, help="steady load through the gateway")
    ap.add_argument("--out", default=str(REPO / "e2e" / "bench" / "results-scale.md"))
    args = ap.parse_args()

    ns = "rollback-bench"
    conftest.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    conftest.kubectl("create", "namespace", ns, check=False)
    # Production lease timings: the suite's 4 s lease, renewed within 2.7 s, is lost while the
    # API server absorbs thousands of creates on two cores, and the controller exits.
    conftest.CONTROLLER_FLAGS = ["--prometheus-url", conftest.CLUSTER["PROMETHEUS_URL"]]
    controller = conftest.start_controller()
    gw = conftest.start_gateway(conftest.CLUSTER["KUBECONFIG"], ns)
    try:
        conftest.wait_until(lambda: requests.get(f"{controller.url}/readyz", timeout=1).status_code == 200,
                            timeout=60, what="controller ready")
        runs = []
        for i in range(args.runs):
            r = one_run(ns, gw, args.interval, args.step, args.rps)
            print(f"run {i + 1}: stops picking the target {r['eject_s']:.1f}s, RolledBack {r['status_s']:.1f}s, "
                  f"no more traffic {r['rolled_back_s']:.1f}s after its first bad response", flush=True)
            runs.append(r)
    finally:
        (conftest.E2E_DIR / "prometheus" / "targets" / f"{gw.job}.json").unlink(missing_ok=True)
        gw.proc.stop()
        controller.stop()
        conftest.kubectl("delete", "namespace", ns, "--wait=false", check=False)

    bound = SCRAPE_INTERVAL_S + seconds(args.interval) + 5
    v = versions()
    binary = os.environ.get("SWITCHYARD_BINARY", "debug build")
    rows = "\n".join(f"| {i + 1} | {r['eject_s']:.1f} s | {r['status_s']:.1f} s | {r['rolled_back_s']:.1f} s |"
                     for i, r in enumerate(runs))
    worst = {k: max(r[k] for r in runs) for k in runs[0]}
    text = "\n".join([
        "## Time to rollback",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"Kubernetes {v['kubernetes']}, {v['rustc']}, switchyard {v['switchyard']} ({binary}).",
        f"Command: `python3 e2e/bench/rollback.py --runs {args.runs} --interval {args.interval} --step {args.step} "
        f"--rps {args.rps}`.",
        "",
        f"A route migrating to a target at its first step ({args.step}%), `failureLimit: 0`, analysis interval "
        f"{args.interval}, Prometheus scraping every {SCRAPE_INTERVAL_S:g} s, {args.rps} rps through the gateway; "
        "the target then fails every request. Times from its first bad response; *stops picking* is the start of "
        f"the first {QUIET_S:g} s in which it received no request.",
        "",
        "| run | gateway stops picking the target | route RolledBack | RolledBack and no more traffic |",
        "| --- | --- | --- | --- |",
        rows,
        f"| max | {worst['eject_s']:.1f} s | {worst['status_s']:.1f} s | {worst['rolled_back_s']:.1f} s |",
        "",
        f"Bound: scrape interval + analysis interval + 5 s = {bound:g} s; "
        f"{'met' if worst['rolled_back_s'] <= bound else 'missed'} by the worst run.",
        "",
    ])
    print("\n" + text)
    save_section(pathlib.Path(args.out), text)


if __name__ == "__main__":
    main()
