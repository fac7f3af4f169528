"""`python -m chaos run [--duration 60] [--seed N] [--rate R] [--short] [--no-bus] [--keep]`
and `python -m chaos soak [--minutes 10] [--rate R] [--no-bus] [--keep]` (see chaos/__init__.py)."""

import argparse
import sys

from chaos.run import run_chaos, run_soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="traffic plus faults, then check the invariants")
    run.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    run.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    run.add_argument("--rate", type=float, default=None, help="API operations per second")
    run.add_argument("--short", action="store_true", help="CI: 16 s of load, no broker restarts")
    run.add_argument("--keep", action="store_true", help="keep the chaos database and logs")
    run.add_argument("--no-bus", action="store_true", help="no private RabbitMQ, no bus faults")

    soak = commands.add_parser("soak", help="steady traffic, no faults; watch for growth")
    soak.add_argument("--minutes", type=float, default=10.0)
    soak.add_argument("--seed", type=int, default=None)
    soak.add_argument("--rate", type=float, default=15.0, help="API operations per second")
    soak.add_argument("--sample-every", type=float, default=5.0, help="seconds between samples")
    soak.add_argument("--keep", action="store_true")
    soak.add_argument("--no-bus", action="store_true", help="no private RabbitMQ")

    args = parser.parse_args(argv)
    if args.command == "run":
        if args.duration <= 0 or (args.rate is not None and args.rate <= 0):
            parser.error("--duration and --rate must be positive")
        return run_chaos(args)
    if args.minutes <= 0 or args.rate <= 0 or args.sample_every <= 0:
        parser.error("--minutes, --rate and --sample-every must be positive")
    return run_soak(args)


if __name__ == "__main__":
    sys.exit(main())
