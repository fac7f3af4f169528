from django.core.management.base import BaseCommand, CommandError

from events.operations import replay


class Command(BaseCommand):
    help = (
        "Deliver events again: the dead ones (--dead), one (--sequence N) or a range "
        "(--from A --to B), to every subscriber or to one (--subscriber NAME). The relay "
        "retries them at once; handlers are idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dead", action="store_true")
        parser.add_argument("--sequence", type=int)
        parser.add_argument("--from", dest="first", type=int)
        parser.add_argument("--to", dest="last", type=int)
        parser.add_argument("--subscriber", "--handler", dest="subscriber", metavar="NAME")

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
            count = replay(
                subscriber=options["subscriber"], dead=options["dead"], first=first, last=last
            )
        except (KeyError, ValueError) as exc:
            raise CommandError(str(exc.args[0])) from exc
        self.stdout.write(f"{count} deliver{'y' if count == 1 else 'ies'} scheduled again")
