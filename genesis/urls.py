"""Root URLs."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from genesis.login import LoginView
from tasks.media import media_file

# admin.site is genesis.login.GenesisAdminSite (genesis/apps.py): titles and the sign-in limits.

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="missions:list", permanent=False)),
    path("favicon.ico", RedirectView.as_view(url=static("genesis/favicon.ico"), permanent=True)),
    path("admin/", admin.site.urls),
    path("api/", include("genesis.api.urls")),  # REST API: /api/v1/, /api/schema/, /api/docs/
    # Pages: sign-in for people (failed attempts limited, genesis/login.py), then missions, cockpit,
    # my work, dashboard.
    path("login/", LoginView.as_view(next_page="missions:list"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("", include("missions.urls")),
    path("", include("tasks.urls")),
    path("", include("blueprints.urls")),
]

# Stored files are never public, not even in development: each is served to those who may read its mission.
urlpatterns.append(path(f"{settings.MEDIA_URL.strip('/')}/<path:name>", media_file, name="media"))

# Errors in the site's layout, with the navigation (genesis/errors.py); the API's own paths answer in JSON.
handler400 = "genesis.errors.bad_request"
handler403 = "genesis.errors.forbidden"
handler404 = "genesis.errors.not_found"
handler500 = "genesis.errors.server_error"
