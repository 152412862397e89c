"""Bare django-q2 tasks for the engine benchmark's reference: a chain of tasks enqueuing each other, and
independent tasks for throughput. Each appends its start/end times to a file named by the driver."""

from __future__ import annotations

import time


def chain_hop(index: int, total: int, path: str) -> None:
    started = time.time()
    if index + 1 < total:
        from django_q.tasks import async_task

        ended = time.time()
        with open(path, "a") as out:
            out.write(f"{index} {started} {ended}\n")
        async_task("bench.reference.chain_hop", index + 1, total, path)
        return
    with open(path, "a") as out:
        out.write(f"{index} {started} {time.time()}\n")


def unit(index: int, path: str) -> None:
    started = time.time()
    with open(path, "a") as out:
        out.write(f"{index} {started} {time.time()}\n")
