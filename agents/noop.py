"""The ``noop`` agent: does nothing but what its config tells it, for tests, demos and benchmarks.

Config keys (all optional):
- ``sleep_ms``: how long to work (cancellation is checked every 10 ms while sleeping);
- ``ignore_cancel``: sleep on without checking cancellation, as a stuck agent would (the engine then stops its
  worker once ``GENESIS_CANCEL_GRACE_SECONDS`` have passed);
- ``fail_attempts``: fail (retryably) on attempts 1..N; ``fail_always``: fail every attempt, not retryably;
- ``crash_attempts``: kill its own worker process (SIGKILL) on attempts 1..N, as a dying machine would;
  ``crash_always``: on every attempt; ``raise_attempts``: raise an exception on attempts 1..N;
- ``ask``: a question to ask once (with ``options`` and ``default``); the answer is then reported in outputs;
- ``needs_approval``: propose the result for approval instead of finishing;
- ``artifact``: text stored as a ``report`` artifact of the run (``artifact_first``: before working, not after);
- ``db_read_ms``: while working, read its own agent row from the platform database through the ORM every N ms, in a
  transaction of its own, as an agent's own queries do (outside the calls the engine hands it), so a lost
  connection raises in the agent; ``catch_db_errors``: catch such an error and answer a failure instead, as an agent
  that handles its own errors does.
"""

from __future__ import annotations

import os
import signal
import time

from django.db import DatabaseError, transaction

from agents.base import AgentContext, BaseAgent, Failed, NeedsApproval, NeedsInput, Succeeded
from agents.registry import register


@register
class NoopAgent(BaseAgent):
    kind = "noop"
    description = "Sleeps, fails, crashes, asks or proposes as its config says; for tests and benchmarks."

    def run(self, context: AgentContext):
        started = time.time()  # the benchmark's "downstream agent code started"
        config = context.config
        attempt = context.run.attempt
        if config.get("crash_always") or attempt <= int(config.get("crash_attempts", 0)):
            context.log.info("crashing the worker process on attempt %s", attempt)
            os.kill(os.getpid(), signal.SIGKILL)
        if attempt <= int(config.get("raise_attempts", 0)):
            raise RuntimeError(f"noop told to raise on attempt {attempt}")
        deadline = time.monotonic() + int(config.get("sleep_ms", 0)) / 1000
        ignore_cancel = bool(config.get("ignore_cancel"))
        read_every = int(config.get("db_read_ms", 0)) / 1000
        next_read = time.monotonic()
        if config.get("artifact") and config.get("artifact_first"):
            self._write_report(context)
        while time.monotonic() < deadline:
            if read_every and context.agent is not None and time.monotonic() >= next_read:
                failed = self._read_platform(context)
                if failed is not None:
                    return failed
                next_read = time.monotonic() + read_every
            if not ignore_cancel and context.cancelled():
                context.log.info("cancelled while working; stopping")
                return Failed(error="Cancelled while working.", retryable=False)
            time.sleep(min(0.01, max(deadline - time.monotonic(), 0)))
        if config.get("fail_always"):
            return Failed(error="noop told to fail", retryable=False)
        if attempt <= int(config.get("fail_attempts", 0)):
            return Failed(error=f"noop told to fail attempt {attempt}", retryable=True)
        if config.get("ask") and not context.answers:
            return NeedsInput(question=str(config["ask"]), options=list(config.get("options", [])),
                              default=config.get("default"))
        outputs = {"attempt": attempt, "started": started}
        if context.answers:
            outputs["answer"] = context.answers[-1]["answer"]
        if context.feedback:
            outputs["feedback"] = [f["feedback"] for f in context.feedback]
        if config.get("artifact") and not config.get("artifact_first"):
            self._write_report(context)
        if config.get("needs_approval") and not context.feedback:
            return NeedsApproval(summary=str(config["needs_approval"]), outputs=outputs)
        return Succeeded(outputs=outputs, summary="noop done")

    @staticmethod
    def _write_report(context: AgentContext) -> None:
        context.write_artifact(name=f"{context.task.key}-report.txt", kind="report",
                               content=str(context.config["artifact"]))

    @staticmethod
    def _read_platform(context: AgentContext) -> Failed | None:
        try:
            with transaction.atomic():  # as ORM code often is (get_or_create, bulk_create, its own blocks)
                type(context.agent).objects.filter(pk=context.agent.pk).exists()
        except DatabaseError as error:
            if not context.config.get("catch_db_errors"):
                raise
            context.log.error("reading the platform database failed: %s", error)
            return Failed(error=f"Could not read the platform database: {error}", retryable=True)
        return None
