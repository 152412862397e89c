"""The site's URLs plus one view that fails, for the 500 page test (ROOT_URLCONF points here there)."""

from django.urls import path

from genesis.urls import handler403, handler404, handler500, urlpatterns  # noqa: F401  (the handlers are looked up here)


def fails(request):
    raise RuntimeError("the view failed")


urlpatterns = [*urlpatterns, path("fails/", fails)]
