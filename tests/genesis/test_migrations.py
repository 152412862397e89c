"""Models that moved between apps (history from tasks, the pipeline's records from agents) keep every row: a
database made before the moves, with a mission's records in it, migrates forward and reads the same through the
models' new homes."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

# The last migrations before the models moved.
BEFORE_THE_MOVES = [("agents", "0005_connection_access"), ("tasks", "0005_run_lease_help"), ("history", None),
                    ("pipeline", None)]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


@pytest.mark.django_db(transaction=True)
def test_moved_models_keep_their_rows_content_types_and_schedules():
    old = _migrate(BEFORE_THE_MOVES)
    User = old.get_model("auth", "User")
    Mission = old.get_model("missions", "Mission")
    Task = old.get_model("tasks", "Task")
    Connection = old.get_model("agents", "Connection")
    ContentType = old.get_model("contenttypes", "ContentType")
    owner = User.objects.create(username="owner")
    target = Connection.objects.create(name="WH", engine="sqlite", location="/tmp/wh.sqlite3", purpose="target")
    mission = Mission.objects.create(name="Before the move", objective="Rows survive.", owner=owner)
    task = Task.objects.create(mission=mission, key="map", title="Map", owner_user=owner)
    old.get_model("tasks", "HistoryEntry").objects.create(mission=mission, task=task, event="task.created",
                                                          message="made before the move")
    spec = old.get_model("agents", "MappingSpec").objects.create(mission=mission, target_table="CLAIM_SUMMARY")
    old.get_model("agents", "MappingSpecVersion").objects.create(
        spec=spec, number=1, status="approved", content={"columns": []}, sql="SELECT 1", dialect="sqlite", task=task)
    old.get_model("agents", "Environment").objects.create(mission=mission, name="prod", target=target)
    index = old.get_model("agents", "DocsIndex").objects.create(name="legacy")
    document = old.get_model("agents", "IndexedDocument").objects.create(index=index, title="map.csv",
                                                                         file="docs/x.csv", sha256="0" * 64)
    old.get_model("agents", "Passage").objects.create(document=document, position=1, text="CLAIM_ID: claim id")
    for app, model in [("agents", "mappingspec"), ("agents", "environment"), ("tasks", "historyentry")]:
        ContentType.objects.get_or_create(app_label=app, model=model)
    old.get_model("django_q", "Schedule").objects.create(
        name="genesis-refresh-mission-1", func="agents.jobs.refresh_mission", args="1", schedule_type="C",
        cron="0 2 * * *")

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from django.contrib.contenttypes.models import ContentType as CurrentContentType
    from django_q.models import Schedule

    from history.models import HistoryEntry
    from pipeline.models import DocsIndex, Environment, MappingSpec, MappingSpecVersion, Passage

    entry = HistoryEntry.objects.get(message="made before the move")
    assert (entry.mission.name, entry.task.key, entry.event) == ("Before the move", "map", "task.created")
    version = MappingSpecVersion.objects.select_related("spec").get()
    assert (version.spec.target_table, version.status, version.task.key) == ("CLAIM_SUMMARY", "approved", "map")
    assert MappingSpec.objects.get().mission.name == "Before the move"
    assert Environment.objects.get().target.name == "WH"
    assert Passage.objects.get().document.index == DocsIndex.objects.get(name="legacy")
    labels = set(CurrentContentType.objects.filter(model__in=["mappingspec", "environment", "historyentry"])
                 .values_list("app_label", "model"))
    assert labels == {("pipeline", "mappingspec"), ("pipeline", "environment"), ("history", "historyentry")}
    assert Schedule.objects.get(name="genesis-refresh-mission-1").func == "pipeline.jobs.refresh_mission"
