"""Database-level guards that no ORM path can bypass.

- History is append-only: on PostgreSQL a trigger refuses UPDATE and DELETE on the history table.
  (TRUNCATE, used only by test flushes, is a separate statement and stays allowed.)
- A dependency links two tasks of the same mission: a trigger refuses anything else, on both engines.
"""

from django.db import migrations

PG_HISTORY = """
CREATE OR REPLACE FUNCTION genesis_history_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'history is append-only: % on tasks_historyentry refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS history_append_only ON tasks_historyentry;
CREATE TRIGGER history_append_only BEFORE UPDATE OR DELETE ON tasks_historyentry
    FOR EACH ROW EXECUTE FUNCTION genesis_history_append_only();
"""
PG_HISTORY_REVERSE = """
DROP TRIGGER IF EXISTS history_append_only ON tasks_historyentry;
DROP FUNCTION IF EXISTS genesis_history_append_only();
"""

PG_SAME_MISSION = """
CREATE OR REPLACE FUNCTION genesis_dependency_same_mission() RETURNS trigger AS $$
BEGIN
    IF (SELECT mission_id FROM tasks_task WHERE id = NEW.task_id)
       IS DISTINCT FROM (SELECT mission_id FROM tasks_task WHERE id = NEW.depends_on_id) THEN
        RAISE EXCEPTION 'a dependency must link two tasks of the same mission'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS dependency_same_mission ON tasks_dependency;
CREATE TRIGGER dependency_same_mission BEFORE INSERT OR UPDATE ON tasks_dependency
    FOR EACH ROW EXECUTE FUNCTION genesis_dependency_same_mission();
"""
PG_SAME_MISSION_REVERSE = """
DROP TRIGGER IF EXISTS dependency_same_mission ON tasks_dependency;
DROP FUNCTION IF EXISTS genesis_dependency_same_mission();
"""

SQLITE_SAME_MISSION = [
    """
    CREATE TRIGGER IF NOT EXISTS dependency_same_mission_insert BEFORE INSERT ON tasks_dependency
    WHEN (SELECT mission_id FROM tasks_task WHERE id = NEW.task_id)
         IS NOT (SELECT mission_id FROM tasks_task WHERE id = NEW.depends_on_id)
    BEGIN SELECT RAISE(ABORT, 'a dependency must link two tasks of the same mission'); END;
    """,
    """
    CREATE TRIGGER IF NOT EXISTS dependency_same_mission_update BEFORE UPDATE ON tasks_dependency
    WHEN (SELECT mission_id FROM tasks_task WHERE id = NEW.task_id)
         IS NOT (SELECT mission_id FROM tasks_task WHERE id = NEW.depends_on_id)
    BEGIN SELECT RAISE(ABORT, 'a dependency must link two tasks of the same mission'); END;
    """,
]
SQLITE_SAME_MISSION_REVERSE = [
    "DROP TRIGGER IF EXISTS dependency_same_mission_insert;",
    "DROP TRIGGER IF EXISTS dependency_same_mission_update;",
]


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_HISTORY, params=None)
        schema_editor.execute(PG_SAME_MISSION, params=None)
    elif vendor == "sqlite":
        for statement in SQLITE_SAME_MISSION:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_HISTORY_REVERSE)
        schema_editor.execute(PG_SAME_MISSION_REVERSE)
    elif vendor == "sqlite":
        for statement in SQLITE_SAME_MISSION_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("tasks", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
