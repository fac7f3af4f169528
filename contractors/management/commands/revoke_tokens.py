"""`python manage.py revoke_tokens NAME...` revokes every API token of those users (their open
websockets close within seconds); `--expired` removes expired tokens of everyone. Unknown
names end with a one-line reason and a non-zero exit, nothing revoked."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from contractors.tokens import prune_expired_tokens, revoke_tokens


class Command(BaseCommand):
    help = "Revoke all API tokens of the named users, or remove expired tokens (--expired)."

    def add_arguments(self, parser):
        parser.add_argument("usernames", nargs="*", metavar="NAME")
        parser.add_argument("--expired", action="store_true", help="Remove expired tokens.")

    def handle(self, *args, **options):
        names = options["usernames"]
        if not names and not options["expired"]:
            raise CommandError("Name at least one user, or pass --expired.")
        user_model = get_user_model()
        field = user_model.USERNAME_FIELD
        users = {
            getattr(u, field): u
            for u in user_model._default_manager.filter(**{f"{field}__in": names})
        }
        unknown = [name for name in names if name not in users]
        if unknown:
            raise CommandError(f"No such user: {', '.join(unknown)}.")
        with transaction.atomic():
            for name in names:
                count = revoke_tokens(user=users[name])
                self.stdout.write(f"{name}: {count} token(s) revoked.")
            if options["expired"]:
                self.stdout.write(f"{prune_expired_tokens()} expired token(s) removed.")
