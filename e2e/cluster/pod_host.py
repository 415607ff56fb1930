#!/usr/bin/env python3
"""Serves every simulated inference pod from one process, run by pod_agent.py inside the pod
network namespace (netns.sh). Reads commands on stdin, one JSON object a line:

    {"op": "start", "uid": "...", "ip": "10.244.3.7", "port": 8000, "model": "..."}
    {"op": "stop", "uid": "..."}

and answers each on stdout ({"uid": ..., "ok": true} or {"uid": ..., "error": "..."}). One
selector accepts on every pod's socket (each request then runs on its own thread, as in the
standalone mock), so hundreds of pods cost sockets of one interpreter, not an interpreter and
a polling thread each.
"""

import json
import os
import pathlib
import selectors
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "mock"))
import mock_provider  # noqa: E402

servers = {}  # pod uid -> (ip, MockServer)
sel = selectors.DefaultSelector()


def reply(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def start(cmd):
    uid, ip, port = cmd["uid"], cmd["ip"], int(cmd["port"])
    # Inside the namespace already: the pod's address goes on its loopback directly.
    subprocess.run(["ip", "addr", "replace", f"{ip}/32", "dev", "lo"], check=True, capture_output=True)
    server = mock_provider.MockServer((ip, port), "vllm", cmd["model"], None, None, quiet=False)
    server.socket.setblocking(False)  # a connection gone before accept must not stall the loop
    sel.register(server.socket, selectors.EVENT_READ, server)
    servers[uid] = (ip, server)


def stop(uid):
    ip, server = servers.pop(uid)
    sel.unregister(server.socket)
    server.stopping.set()  # releases requests held by hang or delay faults
    server.server_close()
    # Another live pod may have been given the same IP after this one went away.
    if not any(other == ip for other, _ in servers.values()):
        subprocess.run(["ip", "addr", "del", f"{ip}/32", "dev", "lo"], check=False, capture_output=True)


def command(line):
    cmd = json.loads(line)
    try:
        if cmd["op"] == "start":
            if cmd["uid"] in servers:
                stop(cmd["uid"])
            start(cmd)
        elif cmd["op"] == "stop":
            if cmd["uid"] in servers:
                stop(cmd["uid"])
        reply(uid=cmd.get("uid"), ok=True)
    except (OSError, subprocess.CalledProcessError, ValueError) as err:
        reply(uid=cmd.get("uid"), error=str(err))


def main():
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    sel.register(stdin, selectors.EVENT_READ, None)
    pending = b""
    while True:
        for key, _ in sel.select():
            if key.data is not None:
                key.data._handle_request_noblock()  # accept, then a thread per request
                continue
            chunk = os.read(stdin, 65536)
            if not chunk:  # the agent is gone: so are the pods
                for uid in list(servers):
                    stop(uid)
                return
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    command(line)


if __name__ == "__main__":
    main()
