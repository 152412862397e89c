"""Sign-in for people, on the site (``/login/``) and in the admin (``/admin/login/``): Django's LoginView with the
failed-sign-in limits of ``genesis.login_limits``. While an attempt must wait the page answers 429 with the reason
and the wait, and the password is not checked."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from genesis.login_limits import LoginLimit


class LimitedLoginMixin:
    """An authentication form that refuses, before the password is checked, an attempt whose address or username
    used up its failed sign-ins. Failures are counted where Django reports them (``user_login_failed``)."""

    limit: LoginLimit | None = None

    def clean(self):
        # Only an attempt that would check a password is held back (or lets one through past a wait).
        if self.cleaned_data.get("username") is not None and self.cleaned_data.get("password"):
            limit = LoginLimit(self.request, self.cleaned_data.get("username"))
            if limit.blocked():
                self.limit = limit
                raise ValidationError(limit.message, code="too_many_attempts")
        return super().clean()


class LimitedAuthenticationForm(LimitedLoginMixin, AuthenticationForm):
    pass


class LimitedAdminAuthenticationForm(LimitedLoginMixin, AdminAuthenticationForm):
    pass


def answer_too_many(response):
    """The login page re-shown for an attempt refused by a limit: status 429 with ``Retry-After``."""
    form = (getattr(response, "context_data", None) or {}).get("form")
    limit = getattr(form, "limit", None)
    if limit is not None:
        response.status_code = 429
        response["Retry-After"] = str(limit.retry_after)
    return response


class LoginView(auth_views.LoginView):
    authentication_form = LimitedAuthenticationForm

    def form_invalid(self, form):
        return answer_too_many(super().form_invalid(form))


class GenesisAdminSite(admin.AdminSite):
    """The admin (``admin.site``, see genesis/apps.py), with the sign-in limits."""

    site_header = "Genesis"
    site_title = "Genesis"
    index_title = "Missions, tasks and agents"
    login_form = LimitedAdminAuthenticationForm

    def login(self, request, extra_context=None):
        return answer_too_many(super().login(request, extra_context))
