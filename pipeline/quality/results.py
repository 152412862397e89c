"""What one data-quality check found; the checks (``checks``) and the reconciliation (``reconcile``) both answer
with it, and ``run_checks`` runs both."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SAMPLE = 10  # offending keys kept per failed check


@dataclass
class CheckResult:
    """One data-quality check on one target (and column)."""

    check: str
    target: str
    column: str = ""
    passed: bool = True
    failing_rows: int = 0
    sample_keys: list = field(default_factory=list)
    detail: str = ""
    sql: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        where = f"{self.target}.{self.column}" if self.column else self.target
        if self.check == "reconcile":
            return f"reconcile on {where}: {self.detail}"
        text = f"{self.check} on {where}: {self.failing_rows:,} failing row(s)"
        if self.detail:
            text += f" ({self.detail})"
        if self.sample_keys:
            text += f"; sample keys {', '.join(str(k) for k in self.sample_keys[:SAMPLE])}"
        return text
