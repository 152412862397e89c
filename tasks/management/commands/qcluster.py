"""``manage.py qcluster``: django-q2's command, running the supervised cluster of ``tasks.cluster``."""

import os

from django.conf import settings
from django_q.management.commands import qcluster

from tasks import cluster


class Command(qcluster.Command):
    help = "Starts a django-q2 cluster that restarts itself when a dead process leaves it unable to run anything."

    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018 (as django-q2's command: signing needs it)
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster.run(run_once=options.get("run_once", False))
