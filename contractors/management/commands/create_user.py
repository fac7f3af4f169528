"""`python manage.py create_user NAME --role dispatcher|contractor|admin ...`: one login, its
API token printed. Bad input ends with a one-line reason and a non-zero exit, nothing written
(the work is `contractors.services.create_account`, one transaction)."""

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from contractors.access import Role
from contractors.services import create_account
from events.errors import DomainError


class Command(BaseCommand):
    help = "Create a dispatcher, contractor or admin login and print its API token."
    stealth_options = ("stdin",)  # tests hand in a terminal, as for createsuperuser

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=[role.value for role in Role])
        parser.add_argument(
            "--regions",
            default="",
            help="Dispatchers only: comma-separated region slugs to watch (none = all regions).",
        )
        parser.add_argument(
            "--contractor",
            type=int,
            dest="contractor_id",
            metavar="ID",
            help="Contractor logins only: the contractor this login belongs to.",
        )
        parser.add_argument(
            "--password", help="The password (prompted for twice when omitted and on a TTY)."
        )

    def handle(self, *args, **options):
        password = options["password"]
        if password is None:
            password = self._prompt_password(options.get("stdin", sys.stdin))
        try:
            account = create_account(
                username=options["username"],
                role=options["role"],
                password=password,
                regions=options["regions"].split(","),
                contractor_id=options["contractor_id"],
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Created {options['role']} '{account.user.get_username()}'.")
        self.stdout.write(f"token: {account.token_key}")

    def _prompt_password(self, stdin) -> str:
        if not (hasattr(stdin, "isatty") and stdin.isatty()):
            raise CommandError("No --password given and no terminal to prompt for one.")
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Password (again): "):
            raise CommandError("The passwords do not match.")
        return first
