"""The API's URLs: ``/api/v1/`` (every app's routes on one router), ``/api/schema/`` and ``/api/docs/``."""

from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import APIRootView, DefaultRouter

from agents.api.urls import routes as agent_routes
from blueprints.api.urls import routes as blueprint_routes
from genesis.api.filters import KnownQueryParametersMixin
from genesis.api.token import ObtainTokenView
from missions.api.urls import routes as mission_routes
from pipeline.api.urls import routes as pipeline_routes
from tasks.api.urls import routes as task_routes


class RootView(KnownQueryParametersMixin, APIRootView):
    """The list of resources at /api/v1/."""


class Router(DefaultRouter):
    include_format_suffixes = False
    APIRootView = RootView


router = Router()
for prefix, viewset, basename in [*mission_routes, *task_routes, *agent_routes, *pipeline_routes, *blueprint_routes]:
    router.register(prefix, viewset, basename=basename)

@csrf_exempt
def not_found(request, *args, **kwargs):
    """Any other path under /api/: the API's own 404 body, in JSON, never the HTML page."""
    return JsonResponse({"code": "not_found", "detail": "No such API endpoint.", "errors": {}}, status=404)


urlpatterns = [
    path("v1/auth/token/", ObtainTokenView.as_view(), name="api-token"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"", not_found),
]
