"""Free TCP ports on 127.0.0.1."""

from __future__ import annotations

import random
import socket

#: Every port :func:`free_port` and :func:`free_ports` returned in this process.
_handed_out: set[int] = set()


def free_port() -> int:
    """A port the OS reports free right now, and not handed out here before."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct ports that are free right now and were not handed out here before.

    The caller binds them later (a subprocess, a server): until then the OS may offer the same
    port to the next bind to port 0, two calls in a row returning the same one about once in
    15,000 pairs, and two servers of one test would then fight over it. Every socket stays
    bound until all are chosen, so the OS offers each port once, and one handed out earlier
    is passed over.
    """
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in _handed_out:
                ports.append(port)
        _handed_out.update(ports)
        return ports
    finally:
        for sock in sockets:
            sock.close()


def free_port_block(count: int, attempts: int = 200) -> int:
    """The first of ``count`` consecutive ports that are free right now."""
    for _ in range(attempts):
        # Below Linux's ephemeral range (32768+), where outgoing connections take ports.
        base = random.randrange(20000, 32000 - count)
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise RuntimeError(f"no {count} consecutive free ports found")
