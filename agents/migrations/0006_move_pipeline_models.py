# The data-pipeline models moved to the pipeline app (its 0001), keeping their tables: only Django's state
# changes here, no row moves.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0005_connection_access'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[], state_operations=[
        migrations.RemoveField(
            model_name='indexeddocument',
            name='index',
        ),
        migrations.RemoveField(
            model_name='environment',
            name='mission',
        ),
        migrations.RemoveField(
            model_name='environment',
            name='target',
        ),
        migrations.RemoveField(
            model_name='passage',
            name='document',
        ),
        migrations.RemoveField(
            model_name='mappingspec',
            name='mission',
        ),
        migrations.RemoveField(
            model_name='mappingspecversion',
            name='spec',
        ),
        migrations.RemoveField(
            model_name='mappingspecversion',
            name='created_by_agent',
        ),
        migrations.RemoveField(
            model_name='mappingspecversion',
            name='decided_by',
        ),
        migrations.RemoveField(
            model_name='mappingspecversion',
            name='run',
        ),
        migrations.RemoveField(
            model_name='mappingspecversion',
            name='task',
        ),
        migrations.DeleteModel(
            name='DocsIndex',
        ),
        migrations.DeleteModel(
            name='Environment',
        ),
        migrations.DeleteModel(
            name='IndexedDocument',
        ),
        migrations.DeleteModel(
            name='Passage',
        ),
        migrations.DeleteModel(
            name='MappingSpec',
        ),
        migrations.DeleteModel(
            name='MappingSpecVersion',
        ),
            ]),
    ]
