"""The contract between the engine and the data agents.

An agent is a class with a ``kind`` and ``run(context) -> Outcome``. It sees the world only through the
``AgentContext`` the engine hands it and answers with one of the outcomes below; it never changes a task's
status itself (the engine does, through the task services).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from agents.models import Agent, Connection


class ArtifactWriter(Protocol):
    def __call__(self, *, name: str, kind: str, content: bytes | str, content_type: str = "") -> Any: ...


@dataclass
class AgentContext:
    """What an agent may see and use while it runs one attempt of one task."""

    mission: Any
    task: Any
    run: Any
    agent: Agent | None
    config: dict[str, Any]
    connections: dict[str, Connection]
    # Feedback from rejections and answers to questions, oldest first, from earlier runs of this task.
    feedback: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    # Callables the engine provides: attach a file to the run, log into the run's log, renew the lease,
    # and ask whether the run has been cancelled (agents check it between steps and stop promptly).
    write_artifact: ArtifactWriter | None = None
    log: Any = None
    heartbeat: Any = None
    cancelled: Any = None
    workspace: Any = None  # a pathlib.Path the agent may write scratch files to
    # What the mission recorded so far, read through the engine: the content of the mission's newest artifact with a
    # name (None if there is none), and every attempt of the mission's tasks in order, as
    # ``{"task", "attempt", "status", "log", "error"}``.
    read_artifact: Callable[[str], bytes | None] | None = None
    mission_runs: Callable[[], list[dict[str, Any]]] | None = None


@dataclass
class Succeeded:
    """The work is done; ``outputs`` is stored as the run's result."""

    outputs: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


@dataclass
class NeedsInput:
    """The agent cannot go on without a person's answer to ``question``."""

    question: str
    options: list[str] = field(default_factory=list)
    default: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class NeedsApproval:
    """The work is proposed; a person must approve it (or reject it with feedback) before it counts."""

    summary: str
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Failed:
    """The attempt failed. ``retryable`` failures are retried up to the task's max attempts."""

    error: str
    retryable: bool = True
    outputs: dict[str, Any] = field(default_factory=dict)


Outcome = Succeeded | NeedsInput | NeedsApproval | Failed


class BaseAgent:
    """Subclass, set ``kind`` and ``description``, implement ``run``, and decorate with ``@register``."""

    kind: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def run(self, context: AgentContext) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def approved(self, *, task, run, actor) -> None:
        """Called when a person approves what this agent proposed (``NeedsApproval``), inside the approval's
        transaction, before the mission moves on: bring the agent's own records in line. Nothing by default."""
