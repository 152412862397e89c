"""The engine's once-a-minute recovery sweep, as a django-q2 schedule (the idle brokers also sweep every few s)."""

from django.db import migrations


def add_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="genesis-sweep",
        defaults={"func": "tasks.jobs.sweep", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="genesis-sweep").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0003_engine"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
