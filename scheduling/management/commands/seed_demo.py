"""`python manage.py seed_demo [--contractors N] [--jobs N] [--seed S] [--append]`: load the
demo data set through the services (`scheduling.demo.seed_demo`) and print the demo logins.
With contractors already present it does nothing (exit 0) unless --append is given. With
DATABASE_URL set (the production shape) it refuses unless --force is given: the demo logins'
passwords are printed in the README."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from events.errors import DomainError
from scheduling.demo import seed_demo

# Below this many rows a phase finishes before a progress line would help.
PROGRESS_FROM = 500


class ProgressLine:
    """One updating `phase done/total (pct) rows/s` line on stderr for the large phases."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self.started: dict[str, float] = {}
        self.shown: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if total < PROGRESS_FROM:
            return
        started = self.started.setdefault(phase, time.perf_counter())
        percent = 100 * done // total
        # Off a terminal "\r" does not rewrite, so print every tenth there instead.
        if not self.tty and done < total and percent // 10 == self.shown.get(phase, -1):
            return
        self.shown[phase] = percent // 10
        rate = done / max(time.perf_counter() - started, 1e-6)
        line = f"{phase}: {done}/{total} ({percent}%) {rate:,.0f}/s"
        ending = "\n" if done >= total or not self.tty else ""
        self.stream.write(("\r" if self.tty else "") + line, ending=ending)
        self.stream.flush()


class Command(BaseCommand):
    help = "Load a believable demo data set (regions, contractors, jobs, bookings, logins)."

    def add_arguments(self, parser):
        parser.add_argument("--contractors", type=int, default=36, help="Default 36.")
        parser.add_argument("--jobs", type=int, default=40, help="Default 40.")
        parser.add_argument("--seed", type=int, default=7, help="Random seed (default 7).")
        parser.add_argument(
            "--append", action="store_true", help="Add to existing data instead of refusing."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Load it into a production-shape database (DATABASE_URL set) anyway.",
        )
        parser.add_argument("--dispatcher-username", default="dispatcher")
        parser.add_argument("--dispatcher-password", default="dispatch-demo")
        parser.add_argument("--contractor-username", default="contractor")
        parser.add_argument("--contractor-password", default="contractor-demo")

    def handle(self, *args, **options):
        if settings.DATABASE_URL and not options["force"]:
            # The demo logins have published passwords; a real database must not get them.
            raise CommandError(
                "DATABASE_URL is set (the production shape): the demo logins' passwords are "
                "public. Use --force to load the demo data here anyway."
            )
        if options["contractors"] < 0 or options["jobs"] < 0:
            raise CommandError("--contractors and --jobs must be 0 or more.")
        try:
            report = seed_demo(
                seed=options["seed"],
                contractors=options["contractors"],
                jobs=options["jobs"],
                append=options["append"],
                dispatcher_login=(options["dispatcher_username"], options["dispatcher_password"]),
                contractor_login=(options["contractor_username"], options["contractor_password"]),
                progress=ProgressLine(self.stderr),
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        for line in report.lines():
            self.stdout.write(line)
