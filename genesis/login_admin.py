"""The admin's people list with their sign-in standing: a column (``waiting 4 minutes (8 failed sign-ins)``), a
filter for the people who must wait or have failed sign-ins counted, and the "Unlock sign-in" action that clears
their counts (``manage.py unlock_user`` does the same from the command line, and clears an address too)."""

from __future__ import annotations

import logging

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from genesis.login_limits import FailureCounter, describe, standings_of

logger = logging.getLogger("genesis.auth")

_CHUNK = 1000


class SignInFilter(admin.SimpleListFilter):
    title = "sign-in"
    parameter_name = "sign_in"

    def lookups(self, request, model_admin):
        return [("waiting", "Must wait (throttled)"), ("failing", "With failed sign-ins")]

    def queryset(self, request, queryset):
        if self.value() not in {"waiting", "failing"}:
            return queryset
        names = list(queryset.values_list(get_user_model().USERNAME_FIELD, flat=True))
        keep = []
        for start in range(0, len(names), _CHUNK):  # one cache read per thousand people
            for name, standing in standings_of(names[start:start + _CHUNK]).items():
                if standing.waiting or (self.value() == "failing" and standing.failures):
                    keep.append(name)
        return queryset.filter(**{f"{get_user_model().USERNAME_FIELD}__in": keep})


class SignInUserAdmin(UserAdmin):
    """Django's user admin, with each person's sign-in standing and the unlock action."""

    list_display = (*UserAdmin.list_display, "sign_in")
    list_filter = (*UserAdmin.list_filter, SignInFilter)
    actions = ["unlock_sign_in"]

    def get_changelist(self, request, **kwargs):
        base = super().get_changelist(request, **kwargs)

        class SignInChangeList(base):
            def get_results(self, request):
                super().get_results(request)
                people = list(self.result_list)  # the page's rows, read once; the column reads what is set here
                standings = standings_of([person.get_username() for person in people])
                for person in people:
                    person.sign_in_standing = standings[person.get_username()]

        return SignInChangeList

    @admin.display(description="Sign-in")
    def sign_in(self, obj):
        standing = getattr(obj, "sign_in_standing", None)
        if standing is None:
            standing = FailureCounter.for_username(obj.get_username()).standing()
        return describe(standing) or "—"

    @admin.action(description="Unlock sign-in (clear the failed sign-ins)", permissions=["change"])
    def unlock_sign_in(self, request, queryset):
        cleared = []
        for person in queryset:
            before = FailureCounter.for_username(person.get_username()).clear()
            logger.warning("Sign-in of %r unlocked by %s in the admin (%s)", person.get_username(),
                           request.user.get_username(), describe(before) or "nothing counted")
            cleared.append(f"{person.get_username()} ({describe(before) or 'nothing counted'})")
        self.message_user(request, f"Sign-in unlocked: {', '.join(cleared)}.", messages.SUCCESS)


def register(site) -> None:
    """Show the sign-in standing on ``site``'s people list (in place of Django's own user admin)."""
    user = get_user_model()
    if site.is_registered(user):
        site.unregister(user)
    site.register(user, SignInUserAdmin)
