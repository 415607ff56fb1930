#!/usr/bin/env python3
"""The demo's story, on the running local cluster: steady traffic through the gateway, a
healthy migration from a hosted OpenAI model (played by the mock provider) to the
self-hosted Llama on the H100 pool, then a migration to a faulty L40S deployment that the
controller rolls back by itself, with the analysis values that decided it. Status is shown
live with `switchyard status`.
"""

import json
import os
import pathlib
import subprocess
import sys
import time

import requests

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "e2e" / "tests"))
import conftest  # noqa: E402
from test_migrations import Load  # noqa: E402

NS = "switchyard-demo"
BIN = conftest.switchyard_binary()
ROLLOUT = {"steps": [5, 20, 50, 100], "stepDuration": "15s",
           "analysis": {"interval": "10s", "minRequests": 10, "maxErrorRate": 0.02, "maxLatencyP95": "500ms",
                        "failureLimit": 0}}


def say(text):
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def apply(obj):
    conftest.kubectl("apply", "-f", "-", namespace=NS, input=json.dumps(obj))


def route(backends):
    return {"apiVersion": "switchyard.dev/v1alpha1", "kind": "ModelRoute", "metadata": {"name": "assistant"},
            "spec": {"model": "assistant", "backends": [{"name": b, "weight": w} for b, w in backends],
                     "rollout": ROLLOUT}}


def llama(name, product, count):
    return {"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": {"name": name},
            "spec": {"selfHosted": {"runtime": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct", "replicas": 2,
                                    "gpu": {"count": count, "product": product}},
                     "warmup": {"requests": 50},
                     "pricing": {"inputPerMillionTokens": "0.20", "outputPerMillionTokens": "0.20"}}}


def status_now():
    return conftest.kubectl_json("get", "mr", "assistant", namespace=NS).get("status", {})


def live(until, timeout):
    """Redraws `switchyard status` until `until(status)` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([str(BIN), "status", "assistant", "-n", NS], capture_output=True, text=True).stdout
        if sys.stdout.isatty():
            print("\033[2J\033[H", end="")
        print(out, flush=True)
        if until(status_now()):
            return
        time.sleep(3)
    raise SystemExit("the demo timed out; `kubectl get events -n switchyard-demo` shows why")


def report(since_s):
    """`kubectl switchyard report`: the two migrations as a PNG and SVG timeline, from
    Prometheus (which scrapes the controller's decisions and the gateway) and status history."""
    out = conftest.E2E_DIR / "demo-report"
    env = {**os.environ, "SWITCHYARD_PROMETHEUS_URL": conftest.CLUSTER["PROMETHEUS_URL"]}
    run = subprocess.run([str(BIN), "report", "assistant", "-n", NS, "--since", f"{since_s}s", "-o", str(out)],
                         capture_output=True, text=True, env=env, timeout=120)
    if run.returncode != 0:
        raise SystemExit(f"switchyard report failed: {run.stderr}")
    print(run.stdout, end="")


def main():
    started = time.monotonic()
    conftest.kubectl("create", "namespace", NS, check=False)
    # demo.sh's controller: its decisions (phase, step, weights, verdicts) for the report.
    conftest.add_scrape_target("demo-controller", "127.0.0.1:18080")
    openai = conftest.Mock("openai")
    gateway = conftest.start_gateway(conftest.CLUSTER["KUBECONFIG"], NS)
    print(f"gateway: {gateway.url} (OpenAI and Anthropic SDKs point here, with the Tenant "
          f"{conftest.TENANT!r}'s key {gateway.key}), mock OpenAI: {openai.url}")
    apply({"apiVersion": "switchyard.dev/v1alpha1", "kind": "InferenceBackend", "metadata": {"name": "openai"},
           "spec": {"external": {"dialect": "openai", "baseUrl": f"{openai.url}/v1", "model": "gpt-4o"},
                    "pricing": {"inputPerMillionTokens": "2.50", "outputPerMillionTokens": "10.00"}}})
    apply(llama("llama-h100", "NVIDIA-H100-80GB-HBM3", 1))
    apply(route([("openai", 100)]))
    conftest.kubectl("wait", "--for=condition=Ready", "ib/llama-h100", "mr/assistant", "--timeout=120s",
                     namespace=NS)
    conftest.wait_until(lambda: any(m["id"] == "assistant" for m in
                                    gateway.get("/v1/models", timeout=2).json()["data"]),
                        timeout=30, what="route served")
    load = Load(gateway, "assistant")
    try:
        say("Steady traffic (40 req/s) on model 'assistant', all on OpenAI. Migrating to the self-hosted Llama:")
        time.sleep(3)
        apply(route([("llama-h100", 100)]))
        live(lambda st: st.get("phase") == "Stable" and st.get("stable", [{}])[0].get("name") == "llama-h100",
             timeout=240)
        say("Promoted: 100% of 'assistant' is served by Llama on H100s.")

        say("Now a bad deployment: Llama on L40S nodes whose pods fail 10% of requests and answer slowly")
        apply(llama("llama-l40s", "NVIDIA-L40S", 2))
        conftest.kubectl("wait", "--for=condition=Ready", "ib/llama-l40s", "--timeout=120s", namespace=NS)
        ib = conftest.kubectl_json("get", "ib", "llama-l40s", namespace=NS)
        for e in ib["status"]["endpoints"]:
            requests.post(f'http://{e["address"]}/_mock/faults', json={"error_rate": 0.1, "latency_ms": 600},
                          timeout=5)
        apply(route([("llama-l40s", 100)]))
        live(lambda st: st.get("phase") == "RolledBack", timeout=120)
        st = status_now()
        stalled = next(c for c in st["conditions"] if c["type"] == "Stalled")
        say("Rolled back by itself, without anyone touching Git:")
        print(f"  {stalled['reason']}: {stalled['message']}")
    finally:
        load.stop()
    say("Events")
    print(conftest.kubectl("get", "events", "--field-selector", "involvedObject.kind=ModelRoute",
                           "--sort-by=.metadata.creationTimestamp", namespace=NS).stdout)
    ok = sum(1 for _, _, code in load.answers if code == 200)
    print(f"load generator: {ok} of {len(load.answers)} requests answered 200 during both migrations")
    say("The picture of both migrations: weights, errors, p95, TTFT and cost per backend, steps and outcomes")
    time.sleep(4)  # two scrapes of the final state
    report(int(time.monotonic() - started) + 30)
    # The gateway and the mock stay up with the cluster; `bash e2e/cluster/down.sh` stops them.


if __name__ == "__main__":
    main()
