"""Genesis's own configuration of Django's apps."""

from django.contrib.admin.apps import AdminConfig


class GenesisAdminConfig(AdminConfig):
    """``django.contrib.admin`` with Genesis's admin site (sign-in limits, titles): INSTALLED_APPS names this."""

    default_site = "genesis.login.GenesisAdminSite"
