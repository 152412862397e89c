"""The statuses of a mapping spec version and their allowed moves."""

from django.db import models


class MappingStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SUPERSEDED = "superseded", "Superseded"


# Allowed moves of a mapping spec version; a new proposal supersedes the open or approved one before it.
MAPPING_TRANSITIONS: dict[str, frozenset[str]] = {
    MappingStatus.PROPOSED: frozenset({MappingStatus.APPROVED, MappingStatus.REJECTED, MappingStatus.SUPERSEDED}),
    MappingStatus.APPROVED: frozenset({MappingStatus.SUPERSEDED}),
    MappingStatus.REJECTED: frozenset(),
    MappingStatus.SUPERSEDED: frozenset(),
}
