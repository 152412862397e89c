"""Create the first admin user if there is none: password from GENESIS_ADMIN_PASSWORD, or generated and
printed once."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the admin superuser (once). Password: $GENESIS_ADMIN_PASSWORD or a generated one."

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("GENESIS_ADMIN_USER", "admin"))
        parser.add_argument("--email", default=os.environ.get("GENESIS_ADMIN_EMAIL", "admin@localhost"))

    def handle(self, *args, username, email, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(f"Admin user '{username}' exists; its password is unchanged.")
            return
        password = os.environ.get("GENESIS_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email=email, password=password)
        if os.environ.get("GENESIS_ADMIN_PASSWORD"):
            self.stdout.write(f"Created admin user '{username}' with the password from GENESIS_ADMIN_PASSWORD.")
        else:
            self.stdout.write(
                self.style.WARNING(f"Created admin user '{username}' with password: {password}  (shown once)")
            )
