"""Blueprint constants: parameter types, the roles an action may be owned by, check scopes."""

from django.db import models


class ParamType(models.TextChoices):
    STRING = "string", "Text (one line)"
    TEXT = "text", "Text"
    INTEGER = "integer", "Integer"
    NUMBER = "number", "Number"
    BOOLEAN = "boolean", "Yes/no"
    LIST = "list", "List of text"
    CONNECTION = "connection", "Connection (by name)"


class CheckScope(models.TextChoices):
    EXIT = "exit", "Phase exit criterion"
    ACCEPTANCE = "acceptance", "Task acceptance criterion"
    SUCCESS = "success", "Mission success criterion"


# An action's owner is an agent kind, or one of these roles (resolved to a person at launch).
ROLE_OWNERS = frozenset({"mission_owner", "task_owner"})

# Defaults an action gets when its file does not say otherwise (export leaves them out again).
DEFAULT_TIMEOUT_SECONDS = 3600
DEFAULT_MAX_ATTEMPTS = 3
