"""The fault measures of a chaos run, each with its bound; one out of bounds fails the run.

- store-fault disconnects: sockets the server closed while a store fault lasted (a Redis
  restart, terminated PostgreSQL backends, a broker restart), from the fault until it recovered
  (at least GRACE after its end). Expected none: the server rides these out.
- failed handshakes during faults: connection attempts begun inside any fault's window that did
  not get as far as the `replayed` frame, as a share of those attempts.
- max relay lag: the age of the oldest event some subscriber (or the publisher) still had to
  handle, over the run, sampled every 0.25 s. A subscriber is excused while the store it waits
  for is down and until it recovered (that is the fault's recovery, bounded apart), and the
  poison subscriber's deliberate retries are excused; a killed relay's subscribers are not:
  their lag is what the lease costs.
- recovery per fault: from the store answering again (or the kill, or the termination) until
  every subscriber has handled everything recorded before; a killed relay's subscribers wait
  for its lease, so that bound adds the lease.
- websocket lag during bus outages: `occurredAt` to the client's receipt of events first
  received live and recorded while the broker was down: the bus waits alone.
"""

from dataclasses import dataclass

from chaos.clients import ClientRecord
from chaos.faults import STORE_FAULTS, Fault, Monitor

MAX_RELAY_LAG = 3.0
RECOVERY = 2.0
SIGKILL_EXTRA = 2.0  # a relay_sigkill recovers within its lease plus this
FAILED_HANDSHAKES = 0.05
BUS_OUTAGE_WS_LAG = 1.0
GRACE = 2.0


@dataclass
class Measure:
    name: str
    value: str
    bound: str
    ok: bool
    offending: list[str]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def recovery_bound(fault: Fault, lease: float) -> float:
    return lease + SIGKILL_EXTRA if fault.kind == "relay_sigkill" else RECOVERY


def in_window(at: float, faults: list[Fault]) -> Fault | None:
    for fault in faults:
        start, end = fault.window(GRACE)
        if start <= at <= end:
            return fault
    return None


def bus_outage_lags(
    records: list[ClientRecord], faults: list[Fault]
) -> tuple[list[float], list[float]]:
    """Live frames' lags: (of events recorded while the broker was down, of all the others).
    The others are the machine's baseline: a bus outage should not make the first worse."""
    outages = [(f.started_wall, f.ended_wall) for f in faults
               if f.kind == "bus_restart" and f.ended_wall is not None]  # fmt: skip
    during: list[float] = []
    others: list[float] = []
    for record in records:
        for occurred, received in record.live:
            down = any(start <= occurred <= end for start, end in outages)
            (during if down else others).append(received - occurred)
    return during, others


def run_all(monitor: Monitor, records: list[ClientRecord], lease: float) -> list[Measure]:
    faults = list(monitor.faults)
    store_faults = [f for f in faults if f.kind in STORE_FAULTS]
    measures = []

    closed = [
        (record.name, d, fault)
        for record in records
        for d in record.disconnects
        if (fault := in_window(d.at, store_faults)) is not None
    ]
    total_closed = sum(len(r.disconnects) for r in records)
    measures.append(Measure(
        "disconnects caused by a store fault", f"{len(closed)} (all server closes: "
        f"{total_closed})", "0", not closed,
        [f"{name}: {d.detail} during {f.kind}" for name, d, f in closed],
    ))  # fmt: skip

    attempts = [
        (record.name, a) for record in records for a in record.attempts
        if in_window(a.at, faults) is not None
    ]  # fmt: skip
    failed = [(name, a) for name, a in attempts if not a.ok]
    share = len(failed) / len(attempts) if attempts else 0.0
    measures.append(Measure(
        "failed handshakes during faults", f"{len(failed)}/{len(attempts)} ({share:.1%})",
        f"< {FAILED_HANDSHAKES:.0%}", share < FAILED_HANDSHAKES,
        [f"{name}: {a.error}" for name, a in failed],
    ))  # fmt: skip

    lag, where = monitor.relay_lag(RECOVERY)
    measures.append(Measure(
        "max relay lag", f"{lag:.2f}s" + (f" ({where})" if where else ""),
        f"< {MAX_RELAY_LAG:g}s", lag < MAX_RELAY_LAG, [f"{lag:.2f}s: {where}"] if lag else [],
    ))  # fmt: skip

    late = []
    for fault in faults:
        bound = recovery_bound(fault, lease)
        if fault.recovered_after is None or fault.recovered_after >= bound:
            took = "never" if fault.recovered_after is None else f"{fault.recovered_after:.2f}s"
            last = f"; last to catch up: {', '.join(fault.behind)}" if fault.behind else ""
            late.append(f"{fault.kind} ({fault.detail}): {took}, bound {bound:g}s{last}")
    worst = {}
    for fault in faults:
        if fault.recovered_after is not None:
            worst[fault.kind] = max(worst.get(fault.kind, 0.0), fault.recovered_after)
    measures.append(Measure(
        "recovery per fault (worst)", ", ".join(f"{k} {v:.2f}s" for k, v in worst.items()),
        f"< {RECOVERY:g}s (relay_sigkill: < lease + {SIGKILL_EXTRA:g}s = "
        f"{lease + SIGKILL_EXTRA:g}s)",
        not late, late,
    ))  # fmt: skip

    if any(f.kind == "bus_restart" for f in faults):
        lags, others = bus_outage_lags(records, faults)
        worst_lag = max(lags, default=0.0)
        measures.append(Measure(
            "websocket lag during bus outages",
            f"max {worst_lag:.3f}s, p50 {percentile(lags, 0.5):.3f}s over {len(lags)} frames "
            f"(other frames: max {max(others, default=0.0):.3f}s, p50 "
            f"{percentile(others, 0.5):.3f}s)",
            f"< {BUS_OUTAGE_WS_LAG:g}s", bool(lags) and worst_lag < BUS_OUTAGE_WS_LAG,
            [] if lags else ["no live frame of an event recorded during a bus outage"],
        ))  # fmt: skip
    return measures
