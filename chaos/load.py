"""Booking traffic through the HTTP API at a steady rate: create jobs, book them
(recommendations + assign), reschedule, cancel, rate, edit working hours and time off.

Outcomes are counted per operation and status; 409/400 are normal under contention, and a
5xx while a fault is in progress is counted, not fatal (the invariants decide the run)."""

import http.client
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

HOURS_VARIANTS = [
    [{"weekday": d, "start": "08:00", "end": "17:00"} for d in range(5)],
    [{"weekday": d, "start": "07:00", "end": "16:00"} for d in range(5)],
    [{"weekday": d, "start": "08:00", "end": "17:00"} for d in range(6)],
    [{"weekday": d, "start": "09:00", "end": "18:00"} for d in range(1, 6)],
]


class Api:
    """A tiny JSON client over one keep-alive connection (one per thread)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body=None) -> tuple[int, object]:
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=15)
            try:
                payload = None if body is None else json.dumps(body)
                headers = {"Authorization": f"Token {self.token}", "Accept": "application/json"}
                if payload is not None:
                    headers["Content-Type"] = "application/json"
                self.conn.request(method, path, body=payload, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
                try:
                    data = json.loads(raw) if raw else None
                except ValueError:
                    data = raw[:200]
                return response.status, data
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 1:
                    return 0, None
        return 0, None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class World:
    """What the generator knows of the world (it learns ids from its own responses)."""

    contractors: list[dict]
    lock: threading.Lock = field(default_factory=threading.Lock)
    open_jobs: list[int] = field(default_factory=list)
    booked_jobs: dict[int, int] = field(default_factory=dict)  # job -> contractor
    time_off: list[tuple[int, int]] = field(default_factory=list)  # (contractor, time off id)


class LoadGenerator:
    OPERATIONS = [
        ("create_job", 4),
        ("book", 4),
        ("reschedule", 2),
        ("cancel", 1),
        ("rate", 3),
        ("working_hours", 1),
        ("time_off", 1),
    ]

    def __init__(self, *, port: int, token: str, world: World, rate: float, seed: int,
                 threads: int = 4) -> None:  # fmt: skip
        self.port, self.token, self.world = port, token, world
        self.rate = rate
        self.threads = threads
        self.seed = seed
        self.stop_event = threading.Event()
        self.outcomes: Counter[tuple[str, int]] = Counter()
        self.outcomes_lock = threading.Lock()
        self.workers: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> None:
        for index in range(self.threads):
            worker = threading.Thread(
                target=self._work, args=(index,), name=f"load-{index}", daemon=True
            )
            worker.start()
            self.workers.append(worker)

    def stop(self) -> None:
        self.stop_event.set()
        for worker in self.workers:
            worker.join(timeout=20)

    def count(self, operation: str, status: int) -> None:
        with self.outcomes_lock:
            self.outcomes[(operation, status)] += 1

    def _work(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        api = Api("127.0.0.1", self.port, self.token)
        interval = self.threads / self.rate
        next_at = time.monotonic() + rng.uniform(0, interval)
        names = [name for name, _ in self.OPERATIONS]
        weights = [weight for _, weight in self.OPERATIONS]
        try:
            while not self.stop_event.is_set():
                delay = next_at - time.monotonic()
                if delay > 0 and self.stop_event.wait(delay):
                    break
                next_at = max(next_at + interval, time.monotonic() - interval)
                operation = rng.choices(names, weights)[0]
                try:
                    getattr(self, f"op_{operation}")(api, rng)
                except Exception as exc:  # a bug in the generator: report, keep going
                    self.errors.append(f"{operation}: {type(exc).__name__}: {exc}")
                    self.count(operation, -1)
        finally:
            api.close()

    # --- operations ------------------------------------------------------------------------

    def op_create_job(self, api: Api, rng: random.Random) -> None:
        contractor = rng.choice(self.world.contractors)
        job_type = contractor["type"] if contractor["type"] != "multi" else "tile"
        skills = contractor["skills"][:1] if contractor["skills"] else []
        location = contractor["location"]
        body = {
            "type": job_type,
            "requiredSkills": skills,
            "location": {
                "lat": round(location["lat"] + rng.uniform(-0.05, 0.05), 5),
                "lng": round(location["lng"] + rng.uniform(-0.05, 0.05), 5),
                "address": "chaos site",
            },
            "desiredDate": (date.today() + timedelta(days=rng.randint(1, 8))).isoformat(),
            "durationMinutes": rng.choice([60, 90, 120]),
            "priority": rng.choice(["low", "normal", "high", "urgent"]),
        }
        status, data = api.request("POST", "/api/jobs", body)
        self.count("create_job", status)
        if status == 201 and isinstance(data, dict):
            with self.world.lock:
                self.world.open_jobs.append(data["id"])

    def op_book(self, api: Api, rng: random.Random) -> None:
        with self.world.lock:
            job_id = rng.choice(self.world.open_jobs) if self.world.open_jobs else None
        if job_id is None:
            return self.op_create_job(api, rng)
        status, data = api.request("GET", f"/api/jobs/{job_id}/recommendations?limit=3")
        self.count("recommend", status)
        if status != 200 or not isinstance(data, dict) or not data.get("recommendations"):
            if status in (200, 409):
                self._forget_open(job_id)
            return None
        choice = rng.choice(data["recommendations"])
        if not choice["slots"]:
            return None
        slot = rng.choice(choice["slots"])
        status, data = api.request(
            "POST",
            f"/api/jobs/{job_id}/assign",
            {"contractorId": choice["contractorId"], "start": slot["start"], "end": slot["end"]},
        )
        self.count("assign", status)
        if status == 201:
            with self.world.lock:
                self._forget_open(job_id, locked=True)
                self.world.booked_jobs[job_id] = choice["contractorId"]
        elif status == 409 and isinstance(data, dict) and data.get("code") == "job_not_open":
            self._forget_open(job_id)
        return None

    def _forget_open(self, job_id: int, *, locked: bool = False) -> None:
        if locked:
            if job_id in self.world.open_jobs:
                self.world.open_jobs.remove(job_id)
            return
        with self.world.lock:
            if job_id in self.world.open_jobs:
                self.world.open_jobs.remove(job_id)

    def _booked(self, rng: random.Random) -> tuple[int, int] | None:
        with self.world.lock:
            if not self.world.booked_jobs:
                return None
            job_id = rng.choice(list(self.world.booked_jobs))
            return job_id, self.world.booked_jobs[job_id]

    def op_reschedule(self, api: Api, rng: random.Random) -> None:
        picked = self._booked(rng)
        if picked is None:
            return
        job_id, contractor_id = picked
        status, job = api.request("GET", f"/api/jobs/{job_id}")
        if status != 200 or not isinstance(job, dict) or not job.get("assignment"):
            return
        duration = job["durationMinutes"]
        start_day = date.today() + timedelta(days=rng.randint(1, 6))
        status, data = api.request(
            "GET",
            f"/api/contractors/{contractor_id}/availability?from={start_day}"
            f"&to={start_day + timedelta(days=2)}&duration={duration}",
        )
        self.count("availability", status)
        if status != 200 or not isinstance(data, dict) or not data.get("slots"):
            return
        slot = rng.choice(data["slots"])
        status, _ = api.request(
            "POST", f"/api/jobs/{job_id}/reschedule", {"start": slot["start"], "end": slot["end"]}
        )
        self.count("reschedule", status)

    def op_cancel(self, api: Api, rng: random.Random) -> None:
        with self.world.lock:
            candidates = list(self.world.booked_jobs) + self.world.open_jobs[:5]
        if not candidates:
            return
        job_id = rng.choice(candidates)
        status, _ = api.request("POST", f"/api/jobs/{job_id}/cancel", {"reason": "chaos"})
        self.count("cancel", status)
        if status in (200, 409):
            with self.world.lock:
                self.world.booked_jobs.pop(job_id, None)
                self._forget_open(job_id, locked=True)

    def op_rate(self, api: Api, rng: random.Random) -> None:
        """Only a completed job can be rated: start it, complete it, rate it (each step may
        meet a 409 when another worker got there first)."""
        picked = self._booked(rng)
        if picked is None:
            return
        job_id, _ = picked
        for step in ("start", "complete"):
            status, _ = api.request("POST", f"/api/jobs/{job_id}/{step}", {})
            self.count(step, status)
        status, _ = api.request("PUT", f"/api/jobs/{job_id}/rating", {"rating": rng.randint(1, 5)})
        self.count("rate", status)

    def op_working_hours(self, api: Api, rng: random.Random) -> None:
        contractor = rng.choice(self.world.contractors)
        status, _ = api.request(
            "PUT", f"/api/contractors/{contractor['id']}/working-hours", rng.choice(HOURS_VARIANTS)
        )
        self.count("working_hours", status)

    def op_time_off(self, api: Api, rng: random.Random) -> None:
        with self.world.lock:
            existing = list(self.world.time_off)
        if existing and rng.random() < 0.4:
            contractor_id, time_off_id = rng.choice(existing)
            status, _ = api.request(
                "DELETE", f"/api/contractors/{contractor_id}/time-off/{time_off_id}"
            )
            self.count("time_off_delete", status)
            if status in (204, 200, 404):
                with self.world.lock:
                    if (contractor_id, time_off_id) in self.world.time_off:
                        self.world.time_off.remove((contractor_id, time_off_id))
            return
        contractor = rng.choice(self.world.contractors)
        day = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(
            days=rng.randint(1, 10), hours=rng.randint(0, 23)
        )
        status, data = api.request(
            "POST",
            f"/api/contractors/{contractor['id']}/time-off",
            {
                "start": day.isoformat().replace("+00:00", "Z"),
                "end": (day + timedelta(hours=rng.choice([2, 4, 8]))).isoformat()
                .replace("+00:00", "Z"),
                "reason": "chaos",
            },
        )  # fmt: skip
        self.count("time_off_add", status)
        if status == 201 and isinstance(data, dict) and "id" in data:
            with self.world.lock:
                self.world.time_off.append((contractor["id"], data["id"]))

    # --- summary ---------------------------------------------------------------------------

    def summary(self) -> dict[str, Counter]:
        by_operation: dict[str, Counter] = {}
        for (operation, status), count in sorted(self.outcomes.items()):
            by_operation.setdefault(operation, Counter())[status] += count
        return by_operation
