from django.urls import path, re_path

from missions import views

app_name = "missions"

urlpatterns = [
    path("missions/", views.mission_list, name="list"),
    path("missions/<int:pk>/", views.mission_cockpit, name="cockpit"),
    path("missions/<int:pk>/live/", views.mission_live, name="live"),
    path("missions/<int:pk>/signoff/", views.mission_signoff, name="signoff"),
    path("missions/<int:pk>/history/", views.mission_history, name="history"),
    path("missions/<int:pk>/lineage/", views.mission_lineage, name="lineage"),
    re_path(r"^missions/(?P<pk>[0-9]+)/(?P<action>launch|pause|resume|cancel|close)/$", views.mission_control,
            name="control"),
    path("missions/<int:pk>/phases/<int:phase_pk>/recheck/", views.phase_recheck, name="recheck"),
    path("missions/<int:pk>/checks/<int:check_pk>/waive/", views.check_waive, name="waive"),
    path("missions/<int:pk>/environments/<int:environment_pk>/build/", views.environment_build,
         name="environment_build"),
    path("my-work/", views.my_work, name="my_work"),
    path("dashboard/", views.dashboard, name="dashboard"),
]
