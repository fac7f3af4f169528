"""`python -m bench.layer_to_frame [RATE] [SECONDS]`: the websocket path alone, from the channel
layer to the client, with no database and no relay in it.

One daphne on a private redis-server and database, one dispatcher watching every region (as
in the latency scenario); a sender process hands synthetic event messages to the layer with
`group_send_many` (the broadcast's call) at RATE per second (default 200) for SECONDS
(default 10), stamping each just before the call; the client stamps each frame's receipt.
Prints p50/p90/p99 of the difference: what the latency scenario's commit-to-frame figure
cannot go below on this machine. A probe for docs/profiles/websockets.md, not a scenario of
the report.
"""

import asyncio
import json
import sys
import time
import uuid

SEQUENCE_BASE = 10_000_000  # far past any real sequence the client could have seen


def send(groups: list[str], rate: float, seconds: float, out: str) -> None:
    """In the sender process (Django set up on the cluster's stores)."""
    import django

    django.setup()
    from channels.layers import get_channel_layer

    from events.groups import channels_group_name

    async def main() -> None:
        layer = get_channel_layer()
        names = [channels_group_name(group) for group in groups]
        sent: dict[str, float] = {}
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            event = {"id": str(uuid.uuid4()), "sequence": SEQUENCE_BASE + i, "type": "Probe"}
            sent[event["id"]] = time.time()
            await layer.group_send_many(
                {names[i % len(names)]: [{"type": "event.message", "event": event}]}
            )
        with open(out, "w") as file:
            json.dump(sent, file)

    asyncio.run(main())


def main(argv: list[str]) -> int:
    if argv[:1] == ["send"]:
        send(json.loads(argv[1]), float(argv[2]), float(argv[3]), argv[4])
        return 0
    from bench.cluster import BenchCluster
    from bench.harness import percentile
    from bench.latency import run_worker
    from bench.wsclients import ClientGroup, latencies_ms, start_daphne

    rate, seconds = (float(argv[0]) if argv else 200.0), (float(argv[1]) if argv[1:] else 10.0)
    cluster = BenchCluster("layer_to_frame")
    try:
        cluster.start()
        accounts = cluster.workdir / "accounts.json"
        run_worker(cluster, "relay", "ws-accounts", "--dispatchers", "1", "--out", str(accounts))
        (client,) = json.loads(accounts.read_text())
        _, base = start_daphne(cluster, "daphne")
        clients = ClientGroup(cluster, "clients", base, [client])
        clients.wait_connected()
        out = cluster.workdir / "sent.json"
        argv = [sys.executable, "-m", "bench.layer_to_frame", "send", json.dumps(client["groups"])]
        sender = cluster.spawn("sender", [*argv, str(rate), str(seconds), str(out)])
        sender.proc.wait(timeout=seconds + 120)
        time.sleep(2)  # the last frames
        ((log,),) = [report["clients"] for report in clients.finish()]
        sent = json.loads(out.read_text())
        ms = latencies_ms(sent, log["received"])
        print(
            f"layer to frame at {rate:.0f}/s: {len(ms)} of {len(sent)} received, p50 "
            f"{percentile(ms, 50):.2f} ms, p90 {percentile(ms, 90):.2f} ms, p99 "
            f"{percentile(ms, 99):.2f} ms"
        )
        return 0
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
