from django.core.management.base import BaseCommand, CommandError

from events.operations import replay


class Command(BaseCommand):
    help = (
        "Re-deliver events: every dead one (--dead), one (--sequence N) or a range "
        "(--from A --to B), to every handler or to one (--handler NAME). The relay delivers them."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dead", action="store_true")
        parser.add_argument("--sequence", type=int)
        parser.add_argument("--from", dest="first", type=int)
        parser.add_argument("--to", dest="last", type=int)
        parser.add_argument("--handler")

    def handle(self, *args, **options):
        first, last = options["first"], options["last"]
        if options["sequence"] is not None:
            if first is not None or last is not None:
                raise CommandError("use either --sequence or --from/--to, not both")
            first = last = options["sequence"]
        if not options["dead"] and first is None and last is None:
            raise CommandError("say what to replay: --dead, --sequence N or --from A --to B")
        if first is not None and last is not None and first > last:
            raise CommandError("--from must not be after --to")
        try:
            count = replay(dead=options["dead"], first=first, last=last, handler=options["handler"])
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from exc
        self.stdout.write(f"{count} event(s) pending again")
