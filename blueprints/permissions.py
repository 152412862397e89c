"""Who may change the shared blueprints."""

from __future__ import annotations


def can_import_blueprints(user) -> bool:
    """Importing a blueprint file, or publishing a new version of a shared one (which launches then use by
    default): staff, or a person given ``blueprints.add_blueprintversion`` (directly or through a group)."""
    return bool(user.is_authenticated and user.is_active
                and (user.is_staff or user.has_perm("blueprints.add_blueprintversion")))
