#!/usr/bin/env python3
"""Makes Switchyard's simulated inference pods answer HTTP.

kwok marks pods Running and gives them IPs, but no process stands behind those IPs. This
agent watches pods labelled `switchyard.dev/backend`; for each one with an IP it adds the
IP to the pod network namespace (netns.sh) and starts the mock inference server there,
bound to that IP and the pod's `http` container port, serving the pod's model name. When the
pod goes away, so does its server and address.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
MOCK = HERE.parent / "mock" / "mock_provider.py"
NETNS = os.environ.get("SWITCHYARD_NETNS", "switchyard-pods")
LOG_DIR = pathlib.Path(os.environ["LOG_DIR"])
SELECTOR = "switchyard.dev/backend"

servers = {}  # pod uid -> (ip, Popen)


def log(msg):
    print(f"{time.strftime('%H:%M:%S')} [pod-agent] {msg}", flush=True)


def container_facts(pod):
    """The port named `http` and the served model name (from the runtime's arguments)."""
    port, model = 8000, "model"
    for c in pod["spec"]["containers"]:
        for p in c.get("ports", []):
            if p.get("name") == "http":
                port = p["containerPort"]
        args = c.get("args", []) + c.get("command", [])
        for flag in ("--served-model-name", "--model-id", "--model-path", "--model"):
            if flag in args and args.index(flag) + 1 < len(args):
                model = args[args.index(flag) + 1]
                if flag == "--served-model-name":
                    return port, model
    return port, model


def start(pod):
    uid, ip = pod["metadata"]["uid"], pod["status"]["podIP"]
    port, model = container_facts(pod)
    name = f'{pod["metadata"]["namespace"]}_{pod["metadata"]["name"]}'
    subprocess.run(["bash", str(HERE / "netns.sh"), "add-ip", ip], check=True)
    out = open(LOG_DIR / f"mock-pod-{name}.log", "w")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", NETNS, sys.executable, str(MOCK), "--dialect", "vllm",
         "--host", ip, "--port", str(port), "--model", model],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    servers[uid] = (ip, proc)
    log(f"serving {name} on {ip}:{port} as {model!r} (pid {proc.pid})")


def stop(uid):
    ip, proc = servers.pop(uid)
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    # Another live pod may have been given the same IP after this one went away.
    if not any(other_ip == ip for other_ip, _ in servers.values()):
        subprocess.run(["bash", str(HERE / "netns.sh"), "del-ip", ip], check=False)
    log(f"stopped server on {ip}")


def sync(pods):
    # kwok may hand a new pod the IP of one that is still being deleted. The newest pod owns
    # an IP, as it would on a real network once the old sandbox is gone.
    newest = {}
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if ip and not pod["metadata"].get("deletionTimestamp") and pod["status"].get("phase") == "Running":
            if ip not in newest or pod["metadata"]["creationTimestamp"] >= newest[ip]["metadata"]["creationTimestamp"]:
                newest[ip] = pod
    live = {pod["metadata"]["uid"]: pod for pod in newest.values()}
    for uid in [u for u in servers if u not in live]:
        stop(uid)
    for uid, pod in live.items():
        if uid in servers and servers[uid][1].poll() is not None:
            log(f"server for {pod['metadata']['name']} exited; restarting")
            stop(uid)
        if uid not in servers:
            start(pod)


def shutdown(*_):
    for uid in list(servers):
        stop(uid)
    sys.exit(0)


def main():
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    while True:
        # Polling, not `kubectl get --watch`: kubectl's watch output reached this agent minutes
        # late when few events flowed. A list every quarter second survives API restarts too.
        proc = subprocess.run(["kubectl", "get", "pods", "-A", "-l", SELECTOR, "-o", "json"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            sync(json.loads(proc.stdout)["items"])
        time.sleep(0.25)


if __name__ == "__main__":
    main()
