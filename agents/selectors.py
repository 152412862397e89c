"""Reads of mapping specs shared by agents, pages and the API."""

from __future__ import annotations

from django.db.models import QuerySet

from agents.choices import MappingStatus
from agents.models import MappingSpec, MappingSpecVersion


def mapping_specs_of(*, mission) -> QuerySet[MappingSpec]:
    return MappingSpec.objects.filter(mission=mission).prefetch_related("versions").order_by("target_table")


def mapping_spec_latest(*, mission, target_table: str) -> MappingSpecVersion | None:
    return (MappingSpecVersion.objects.select_related("spec")
            .filter(spec__mission=mission, spec__target_table=target_table).order_by("-number").first())


def mapping_spec_approved(*, mission, target_table: str) -> MappingSpecVersion | None:
    """The approved version later steps (dbt building, validation) must use, or None."""
    return (MappingSpecVersion.objects.select_related("spec")
            .filter(spec__mission=mission, spec__target_table=target_table, status=MappingStatus.APPROVED)
            .order_by("-number").first())


def mapping_specs_approved(*, mission) -> dict[str, MappingSpecVersion]:
    versions = (MappingSpecVersion.objects.select_related("spec")
                .filter(spec__mission=mission, status=MappingStatus.APPROVED).order_by("spec__target_table"))
    return {v.spec.target_table: v for v in versions}


def mapping_specs_waiting(*, mission) -> QuerySet[MappingSpecVersion]:
    return (MappingSpecVersion.objects.select_related("spec")
            .filter(spec__mission=mission, status=MappingStatus.PROPOSED).order_by("spec__target_table"))
