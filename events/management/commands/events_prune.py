from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from events.retention import prune, retention_days


class Command(BaseCommand):
    help = (
        "Remove delivered events older than EVENTS_RETENTION_DAYS (or --days), oldest first; "
        "events still pending or dead for any subscriber stay. --archive DIR writes them as "
        "gzipped JSON lines first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, help=f"default: {retention_days()}")
        parser.add_argument("--archive", metavar="DIR", help="write removed events here first")
        parser.add_argument("--dry-run", action="store_true", help="count, remove nothing")
        parser.add_argument("--batch-size", type=int, default=5000)

    def handle(self, *args, **options):
        days = options["days"]
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        archive = Path(options["archive"]) if options["archive"] else None
        if archive is not None and archive.exists() and not archive.is_dir():
            raise CommandError(f"--archive {archive} exists and is not a folder")
        result = prune(
            days=days,
            archive=archive,
            dry_run=options["dry_run"],
            batch=options["batch_size"],
        )
        verb = "would remove" if options["dry_run"] else "removed"
        self.stdout.write(
            f"{verb} {result.removed} event(s); kept {result.kept_failed} older one(s) "
            f"still pending or dead for a subscriber; pruned through sequence {result.through}"
        )
        for path in result.archives:
            self.stdout.write(f"archived {path}")
