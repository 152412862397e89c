"""Clear failed sign-ins: ``manage.py unlock_user USERNAME [--address IP ...]``. The next attempt of that username
(or from that address) is checked at once, on the site, in the admin and at the API's token endpoint."""

import ipaddress
import logging

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from genesis.login_limits import FailureCounter, describe

logger = logging.getLogger("genesis.auth")


class Command(BaseCommand):
    help = ("Clear the failed sign-ins counted for a username and/or client addresses, so their next sign-in is "
            "checked at once.")

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="?", help="The username whose failed sign-ins to clear.")
        parser.add_argument("--address", action="append", default=[], metavar="IP",
                            help="A client address whose failed sign-ins to clear (may be given several times).")

    def handle(self, *args, username=None, address=(), **options):
        if not username and not address:
            raise CommandError("Name a username, an --address, or both.")
        for ip in address:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise CommandError(f"{ip!r} is not an IP address.") from None
        if username:
            if not get_user_model().objects.filter(username__iexact=username).exists():
                self.stderr.write(f"No user named {username!r}; the failed sign-ins counted for it are cleared anyway.")
            self._clear(FailureCounter.for_username(username), f"Sign-in of {username!r}")
        for ip in address:
            self._clear(FailureCounter.for_address(ip), f"Sign-in from {ip}")

    def _clear(self, counter, what: str) -> None:
        before = describe(counter.clear()) or "nothing was counted"
        logger.warning("%s unlocked from the command line (%s)", what, before)
        self.stdout.write(f"{what} unlocked ({before}).")
