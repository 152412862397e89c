"""A small closed-loop HTTP load for a server on this machine, for when wrk is not installed: ``connections`` clients
each send a GET, wait for the whole answer, and send the next, for ``duration`` seconds; an answer slower than
``timeout`` counts as a timeout (the client then starts over on a new connection), as wrk's ``--timeout`` does.

Each request opens its own connection and says ``Connection: close`` (gunicorn's sync workers close after every
answer anyway). Only loopback addresses are accepted. One asyncio loop in one process: at a few hundred requests a
second it costs a few percent of a core, which the caller reports with the rest of the CPU figures.

    python -m bench.httpload URL [--connections 50] [--duration 30] [--header "Cookie: sessionid=..."]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

LOOPBACK = ("127.", "localhost", "::1")


async def _one(host: str, port: int, request: bytes, timeout: float) -> tuple[int, int]:
    """Status and body size of one GET (the whole answer read), or raises ``TimeoutError``."""

    async def exchange() -> tuple[int, int]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            await writer.drain()
            data = await reader.read()  # the server closes after the answer
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        return status, len(body)

    return await asyncio.wait_for(exchange(), timeout)


async def _client(host: str, port: int, request: bytes, deadline: float, timeout: float, out: dict) -> None:
    while time.monotonic() < deadline:
        started = time.perf_counter()
        try:
            status, _size = await _one(host, port, request, timeout)
        except TimeoutError:
            out["timeouts"] += 1
            continue
        except OSError:
            out["errors"] += 1
            await asyncio.sleep(0.05)
            continue
        out["latencies"].append(time.perf_counter() - started)
        out["statuses"][status] = out["statuses"].get(status, 0) + 1


def run(url: str, *, connections: int = 50, duration: float = 30, timeout: float = 10,
        headers: list[str] | None = None) -> dict:
    """Latency percentiles (ms), requests per second, status counts, timeouts and connection errors."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host.startswith(LOOPBACK):
        raise ValueError(f"{url}: only a server on this machine (loopback) is a target")
    port = parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path or '/'} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close", *(headers or [])]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    out: dict = {"latencies": [], "statuses": {}, "timeouts": 0, "errors": 0}
    started = time.monotonic()
    deadline = started + duration

    async def main() -> None:
        await asyncio.gather(*[_client(host, port, request, deadline, timeout, out) for _ in range(connections)])

    asyncio.run(main())
    elapsed = time.monotonic() - started
    latencies = sorted(out["latencies"])

    def pct(p: int) -> float | None:
        return round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))], 1) if latencies else None

    return {"url": url, "connections": connections, "duration": duration, "requests": len(latencies),
            "requests_per_s": len(latencies) / elapsed, "p50_ms": pct(50), "p90_ms": pct(90), "p95_ms": pct(95),
            "p99_ms": pct(99), "statuses": out["statuses"], "timeouts": out["timeouts"], "errors": out["errors"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    print(json.dumps(run(args.url, connections=args.connections, duration=args.duration, timeout=args.timeout,
                         headers=args.header), indent=1))
