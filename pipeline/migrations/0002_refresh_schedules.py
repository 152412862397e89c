# The refresh job moved with the pipeline app: schedules stored under its old path follow it.

from django.db import migrations

OLD, NEW = "agents.jobs.refresh_mission", "pipeline.jobs.refresh_mission"


def forwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=OLD).update(func=NEW)


def backwards(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(func=NEW).update(func=OLD)


class Migration(migrations.Migration):

    dependencies = [
        ("pipeline", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
