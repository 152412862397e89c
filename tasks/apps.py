from django.apps import AppConfig


class TasksConfig(AppConfig):
    name = "tasks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django_q.signals import pre_execute

        from tasks import runtime

        # Tells the engine whether a run executes in a cluster worker (where an agent that ignores a cancel may be
        # stopped hard) or in the caller's process (sync mode).
        pre_execute.connect(runtime.note_delivery, dispatch_uid="genesis-note-delivery")
