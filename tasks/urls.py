from django.urls import path

from tasks import views

app_name = "tasks"

urlpatterns = [
    path("tasks/<int:pk>/", views.task_detail, name="detail"),
    path("tasks/<int:pk>/approve/", views.task_approve, name="approve"),
    path("tasks/<int:pk>/reject/", views.task_reject, name="reject"),
    path("tasks/<int:pk>/questions/<int:question_pk>/answer/", views.card_answer, name="card_answer"),
    path("tasks/approve-all/", views.approve_all, name="approve_all"),
    path("tasks/<int:pk>/retry/", views.task_retry, name="retry"),
    path("questions/<int:pk>/answer/", views.question_answer, name="answer"),
    path("runs/<int:pk>/log/", views.run_log, name="run_log"),
    path("artifacts/<int:pk>/", views.artifact_detail, name="artifact"),
    path("artifacts/<int:pk>/download/", views.artifact_download, name="artifact_download"),
]
