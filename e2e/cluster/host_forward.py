#!/usr/bin/env python3
"""Makes the cluster's loopback services reachable from pods, as a node's host network is.

The API server and Prometheus listen on 127.0.0.1 only (nothing listens beyond what it
must). Pods that run a real image (pod_runtime.py) live in network namespaces of their own
and reach the host at the host side of the pod network ($POD_HOST_ADDR); this forwards
that address's ports to the same ports on loopback, byte for byte (TLS passes through: the
API server's certificate names $POD_HOST_ADDR too).

    host_forward.py LISTEN_ADDR PORT...
"""

import asyncio
import sys


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


def forwarder(port):
    async def handle(client_reader, client_writer):
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, upstream_writer), pipe(upstream_reader, client_writer))
    return handle


async def main(addr, ports):
    servers = [await asyncio.start_server(forwarder(p), addr, p, reuse_address=True) for p in ports]
    print(f"forwarding {addr} ports {', '.join(map(str, ports))} to 127.0.0.1", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], [int(p) for p in sys.argv[2:]]))
