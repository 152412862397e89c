"""``manage.py start_demo``: what ``make run`` calls so that a fresh machine shows the demo mission running.

Idempotent. The first time, it loads the healthcare demo (``load_demo --launch``, continuous mode) and starts the
mission through the engine; afterwards it only reports where the demo mission stands, at the address the web
server listens on (``HOST`` and ``PORT``, as ``make run`` passes them, or ``--host``/``--port``).
"""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand

from genesis.env import env_int, env_str
from missions.choices import MissionStatus
from missions.models import Mission
from workflows.missions import mission_launch

DEMO_NAME = "Healthcare Data Pipeline (demo)"


class Command(BaseCommand):
    help = "Load the healthcare demo and start its mission (once); later calls only report its state."

    def add_arguments(self, parser):
        parser.add_argument("--claims", type=int, default=20_000)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--host", default=None, help="host the web server listens on (default: $HOST or 127.0.0.1)")
        parser.add_argument("--port", type=int, default=None, help="port of the web server (default: $PORT or 8000)")

    def handle(self, *args, claims, seed, host=None, port=None, **options):
        host = host or env_str("HOST", "127.0.0.1") or "127.0.0.1"
        port = port or env_int("PORT", 8000, minimum=1, maximum=65535)
        mission = Mission.objects.filter(name=DEMO_NAME).order_by("-id").first()
        if mission is None:
            call_command("load_demo", claims=claims, seed=seed, launch=True, mode="continuous",
                         stdout=self.stdout, stderr=self.stderr)
            mission = Mission.objects.filter(name=DEMO_NAME).order_by("-id").get()
        if mission.status == MissionStatus.DRAFT:
            mission_launch(mission=mission, actor=mission.owner)
            self.stdout.write(f"mission {mission.pk} started in {mission.mode} mode")
        self.stdout.write(
            f"demo mission {mission.pk} “{mission.name}” is {mission.status}: http://{host}:{port}/missions/"
            f"{mission.pk}/ (sign in as {mission.owner.get_username()} to approve the mapping specs)"
        )
