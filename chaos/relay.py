"""`python -m chaos.relay ARGS`: `manage.py relay ARGS` with the chaos subscribers
(chaos.subscribers) registered, as the chaos run starts its relays."""

import os
import sys


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smartscheduler.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from chaos.subscribers import register

    register()
    call_command("relay", *argv)


if __name__ == "__main__":
    main(sys.argv[1:])
