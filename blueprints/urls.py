from django.urls import path

from blueprints import views

app_name = "blueprints"

urlpatterns = [
    path("missions/launch/", views.mission_launch, name="launch"),
]
