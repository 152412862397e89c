# The models of the data-pipeline agents, moved here from the agents app with their tables (agents_*): only
# Django's state is created; the content types (and so the permissions granted on them) follow the models.

import django.db.models.deletion
import genesis.uploads
from django.conf import settings
from django.db import migrations, models


MOVED = ["mappingspec", "mappingspecversion", "environment", "docsindex", "indexeddocument", "passage"]


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="agents", model__in=MOVED).update(app_label="pipeline")


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="pipeline", model__in=MOVED).update(app_label="agents")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('agents', '0006_move_pipeline_models'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('missions', '0001_initial'),
        ('tasks', '0005_run_lease_help'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(move_content_types, move_content_types_back),
        migrations.SeparateDatabaseAndState(database_operations=[], state_operations=[
        migrations.CreateModel(
            name='DocsIndex',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(help_text="What a mission's docs_index field names.", max_length=200, unique=True)),
                ('description', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'verbose_name_plural': 'docs indexes',
                'db_table': 'agents_docsindex',
                'ordering': ['name'],
            },
        ),
        migrations.CreateModel(
            name='IndexedDocument',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('title', models.CharField(max_length=200)),
                ('file', models.FileField(max_length=300, upload_to=genesis.uploads.GeneratedName('docs'), validators=[genesis.uploads.validate_upload_size])),
                ('content_type', models.CharField(blank=True, max_length=100)),
                ('sha256', models.CharField(max_length=64)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('index', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='documents', to='pipeline.docsindex')),
            ],
            options={
                'db_table': 'agents_indexeddocument',
                'ordering': ['index_id', 'title'],
            },
        ),
        migrations.CreateModel(
            name='MappingSpec',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('target_table', models.CharField(max_length=200)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('mission', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='mapping_specs', to='missions.mission')),
            ],
            options={
                'db_table': 'agents_mappingspec',
                'ordering': ['mission_id', 'target_table'],
            },
        ),
        migrations.CreateModel(
            name='MappingSpecVersion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('number', models.PositiveIntegerField()),
                ('status', models.CharField(choices=[('proposed', 'Proposed'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('superseded', 'Superseded')], default='proposed', max_length=16)),
                ('content', models.JSONField(help_text='The spec as documented in docs/spec-file.md (mapping spec JSON).')),
                ('sql', models.TextField(help_text="The whole target as one SELECT in the source's dialect.")),
                ('dialect', models.CharField(max_length=32)),
                ('lineage', models.JSONField(blank=True, default=dict, help_text='Target column -> source TABLE.COLUMN list.')),
                ('diff', models.JSONField(blank=True, default=dict, help_text='Changes against the previous version.')),
                ('feedback', models.TextField(blank=True, help_text="The reviewer's feedback when rejected.")),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('created_by_agent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='agents.agent')),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tasks.run')),
                ('spec', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='versions', to='pipeline.mappingspec')),
                ('task', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='tasks.task')),
            ],
            options={
                'db_table': 'agents_mappingspecversion',
                'ordering': ['spec_id', '-number'],
            },
        ),
        migrations.CreateModel(
            name='Passage',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('position', models.PositiveIntegerField()),
                ('text', models.TextField()),
                ('document', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='passages', to='pipeline.indexeddocument')),
            ],
            options={
                'db_table': 'agents_passage',
                'ordering': ['document_id', 'position'],
            },
        ),
        migrations.CreateModel(
            name='Environment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(choices=[('dev', 'Development'), ('test', 'Test'), ('stage', 'Stage'), ('prod', 'Production')], max_length=16)),
                ('description', models.TextField(blank=True)),
                ('last_built_at', models.DateTimeField(blank=True, null=True)),
                ('last_revision', models.CharField(blank=True, help_text='dbt project revision last built here.', max_length=64)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('mission', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='environments', to='missions.mission')),
                ('target', models.ForeignKey(help_text="Where the mission's dbt project builds its targets in this environment.", on_delete=django.db.models.deletion.PROTECT, related_name='environments', to='agents.connection')),
            ],
            options={
                'db_table': 'agents_environment',
                'ordering': ['mission_id', 'name'],
                'constraints': [models.UniqueConstraint(fields=('mission', 'name'), name='environment_one_per_name')],
            },
        ),
        migrations.AddConstraint(
            model_name='mappingspec',
            constraint=models.UniqueConstraint(fields=('mission', 'target_table'), name='mapping_spec_one_per_target'),
        ),
        migrations.AddConstraint(
            model_name='mappingspecversion',
            constraint=models.UniqueConstraint(fields=('spec', 'number'), name='mapping_spec_version_unique'),
        ),
        migrations.AddConstraint(
            model_name='passage',
            constraint=models.UniqueConstraint(fields=('document', 'position'), name='passage_position_unique'),
        ),
            ]),
    ]
