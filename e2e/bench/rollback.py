#!/usr/bin/env python3
"""Time to roll back: a migration holds at its first step (5%) under steady traffic, then
its target starts failing every request. Measured separately, from the first bad answer
the target gives: (a) until the gateway stops sending it requests (outlier ejection), and
(b) until the route is RolledBack and the target gets no traffic at all. Compared with the
bound scrape interval + analysis interval + 5 s.

    python3 e2e/bench/rollback.py [--runs 3] [--out FILE]
"""

import argparse
import pathlib
import sys
import time

import requests

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "e2e" / "tests"))
sys.path.insert(0, str(HERE))
import conftest  # noqa: E402
import measure  # noqa: E402
from measure import bench_env  # noqa: E402
from migration import status  # noqa: E402
from test_gateway_sdk import apply, backend, route  # noqa: E402
from traffic import Load  # noqa: E402

INTERVAL = 10  # analysis interval, seconds


def scrape_interval():
    cfg = requests.get(f"{conftest.CLUSTER['PROMETHEUS_URL']}/api/v1/status/config", timeout=5).json()
    text = cfg["data"]["yaml"]
    line = next(ln for ln in text.splitlines() if "scrape_interval:" in ln)
    return float(line.split(":")[1].strip().rstrip("s"))


def one_run(k, controller_url):
    ns = f"rollback-{k}-{int(time.time()) % 100000}"
    conftest.kubectl("create", "namespace", ns)
    stable, target = conftest.Mock("openai"), conftest.Mock("openai")
    gw = conftest.start_gateway(conftest.CLUSTER["KUBECONFIG"], ns)
    roll = {"steps": [5, 20, 50, 100], "stepDuration": "300s",
            "analysis": {"interval": f"{INTERVAL}s", "minRequests": 5, "maxErrorRate": 0.02, "failureLimit": 0,
                         "maxHold": "10m"}}
    load = None
    try:
        apply(ns, backend("openai", stable, "gpt-4o"), backend("candidate", target, "llama"),
              route("chat", [("openai", 100)], rollout=roll))
        conftest.wait_until(lambda: status(ns).get("phase") == "Stable", timeout=30, what="stable")
        conftest.wait_until(lambda: any(m["id"] == "chat" for m in gw.get(
            "/v1/models", timeout=2).json()["data"]), timeout=30, what="served")
        load = Load(gw, "chat", rps=60)
        time.sleep(2)
        apply(ns, route("chat", [("candidate", 100)], rollout=roll))
        conftest.wait_until(lambda: status(ns).get("phase") == "Progressing" and status(ns).get("step") == 1,
                            timeout=30, what="at the first step")
        conftest.wait_until(lambda: target.chat_requests() >= 5, timeout=30, what="canary traffic")
        time.sleep(3)
        target.faults(error_rate=1.0)
        injected = time.monotonic()
        first_bad = ejected = rolled_back = None
        last_count, last_change = target.chat_requests(), injected
        deadline = injected + 120
        while time.monotonic() < deadline:
            now = time.monotonic()
            count = target.chat_requests()
            if count != last_count:
                if first_bad is None:
                    first_bad = now
                last_count, last_change = count, now
            st = status(ns)
            if rolled_back is None and st.get("phase") == "RolledBack":
                rolled_back = now
            # No request for 3 s: the gateway stopped picking it. The time is the last one sent.
            if ejected is None and first_bad and now - last_change >= 3:
                ejected = last_change
            if rolled_back and ejected and now - last_change >= 3:
                break
            time.sleep(0.05)
        # The target's last request, whatever stopped it: after this, it gets nothing.
        quiet = last_change
        return {"eject": ejected - first_bad if ejected and first_bad else None,
                "rolled_back": rolled_back - first_bad if rolled_back and first_bad else None,
                "no_traffic": max(quiet, rolled_back or quiet) - first_bad if first_bad else None}
    finally:
        if load:
            load.stop()
        gw.proc.stop()
        stable.stop()
        target.stop()
        conftest.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out")
    args, _ = ap.parse_known_args()
    conftest.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    measure.production_controller_flags(conftest)
    controller = conftest.start_controller()
    report = []

    def say(line=""):
        print(line, flush=True)
        report.append(line)
    try:
        scrape = scrape_interval()
        bound = scrape + INTERVAL + 5
        runs = [one_run(k, controller.url) for k in range(args.runs)]
    finally:
        controller.stop()
    say(f"### Time to roll back (target fails every request at the 5% step; failureLimit 0; "
        f"analysis interval {INTERVAL} s, scrape interval {scrape:g} s; bound {bound:g} s)")
    say()
    say("| run | first bad answer → gateway stops picking the target | → route RolledBack | "
        "→ target gets no more traffic |")
    say("|---|---|---|---|")
    f = lambda x: "—" if x is None else f"{x:.1f} s"  # noqa: E731
    for i, r in enumerate(runs, 1):
        say(f"| {i} | {f(r['eject'])} | {f(r['rolled_back'])} | {f(r['no_traffic'])} |")
    worst = max((r["rolled_back"] or float("inf")) for r in runs)
    say(f"| max | {f(max((r['eject'] or float('inf')) for r in runs))} | {f(worst)} | "
        f"{f(max((r['no_traffic'] or float('inf')) for r in runs))} |")
    say()
    say(f"Rolled back within the bound of {bound:g} s in every run: {'yes' if worst <= bound else '**no**'}.")
    say()
    say(f"Environment: {bench_env()}")
    if args.out:
        pathlib.Path(args.out).write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
