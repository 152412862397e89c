"""Genesis's own configuration of Django's apps."""

from django.contrib.admin.apps import AdminConfig


class GenesisAdminConfig(AdminConfig):
    """``django.contrib.admin`` with Genesis's admin site (sign-in limits, titles): INSTALLED_APPS names this."""

    default_site = "genesis.login.GenesisAdminSite"

    def ready(self):
        super().ready()  # every app's admin module is loaded, Django's user admin among them
        from django.contrib import admin

        from genesis.login_admin import register

        register(admin.site)  # people with their sign-in standing and the unlock action
