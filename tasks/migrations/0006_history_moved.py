# HistoryEntry moved to the history app (its 0001), keeping its table and the guards on it: only Django's state
# changes here.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('tasks', '0005_run_lease_help'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[], state_operations=[
            migrations.DeleteModel(name='HistoryEntry'),
        ]),
    ]
