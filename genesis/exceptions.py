"""Domain errors raised by services; pages, admin and API turn them into messages a person can act on."""

from __future__ import annotations


class DomainError(Exception):
    """A refused operation. ``field`` names the input at fault, when there is one."""

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code

    @classmethod
    def from_validation(cls, error) -> DomainError:
        """A model's ``ValidationError`` (from ``full_clean``) as a refusal naming its first field."""
        if hasattr(error, "error_dict"):
            field, errors = next(iter(error.error_dict.items()))
            text = " ".join(message for e in errors for message in e.messages)
            return cls(f"{field}: {text}", field=field if field != "__all__" else None)
        return cls(" ".join(error.messages))


class InvalidTransition(DomainError):
    """A status change that the entity's transition table does not allow."""

    def __init__(self, *, entity: str, label: str, from_status: str, to_status: str, allowed: list[str]):
        allowed_text = ", ".join(allowed) if allowed else "none: it is final"
        super().__init__(
            f"{entity} {label} cannot go from {from_status} to {to_status} (allowed from {from_status}: "
            f"{allowed_text}).",
            field="status",
            code="invalid_transition",
        )
        self.entity = entity
        self.from_status = from_status
        self.to_status = to_status
        self.allowed = allowed


class DependencyCycle(DomainError):
    """A dependency that would close a loop; ``path`` lists task keys from the new edge back to itself."""

    def __init__(self, path: list[str]):
        super().__init__(
            f"This dependency would create a cycle: {' → '.join(path)}.", field="depends_on", code="cycle"
        )
        self.path = path
