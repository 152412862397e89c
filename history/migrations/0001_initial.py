# HistoryEntry, moved here from the tasks app with its table (tasks_historyentry) and the database guards that
# keep it append-only: only Django's state is created; its content type follows it.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def move_content_type(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="tasks", model="historyentry").update(app_label="history")


def move_content_type_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="history", model="historyentry").update(app_label="tasks")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('agents', '0006_move_pipeline_models'),
        ('missions', '0001_initial'),
        ('tasks', '0006_history_moved'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(move_content_type, move_content_type_back),
        migrations.SeparateDatabaseAndState(database_operations=[], state_operations=[
        migrations.CreateModel(
            name='HistoryEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('actor_kind', models.CharField(choices=[('user', 'User'), ('agent', 'Agent'), ('system', 'System')], default='system', max_length=8)),
                ('event', models.CharField(max_length=64)),
                ('from_status', models.CharField(blank=True, max_length=20)),
                ('to_status', models.CharField(blank=True, max_length=20)),
                ('message', models.TextField(blank=True)),
                ('data', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('actor_agent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='agents.agent')),
                ('actor_user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('mission', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='history', to='missions.mission')),
                ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='history', to='tasks.run')),
                ('task', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='history', to='tasks.task')),
            ],
            options={
                'verbose_name_plural': 'history entries',
                'db_table': 'tasks_historyentry',
                'ordering': ['created_at', 'id'],
                'indexes': [models.Index(fields=['mission', 'created_at'], name='history_mission_time_idx'), models.Index(fields=['task', 'created_at'], name='history_task_time_idx')],
            },
        ),
            ]),
    ]
