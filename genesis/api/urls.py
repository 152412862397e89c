"""The API's URLs: ``/api/v1/`` (every app's routes on one router), ``/api/schema/`` and ``/api/docs/``."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from agents.api.urls import routes as agent_routes
from genesis.api.token import ObtainTokenView
from missions.api.urls import routes as mission_routes
from tasks.api.urls import routes as task_routes


class Router(DefaultRouter):
    include_format_suffixes = False


router = Router()
for prefix, viewset, basename in [*mission_routes, *task_routes, *agent_routes]:
    router.register(prefix, viewset, basename=basename)

urlpatterns = [
    path("v1/auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
