"""Who can act in history: a person, an agent or the system."""

from django.db import models


class ActorKind(models.TextChoices):
    USER = "user", "User"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"
