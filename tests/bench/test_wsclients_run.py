"""bench.wsclients against a small websocket server standing in for daphne: frames are stamped
by event id (duplicates once), the replay is read up to `replayed`, a refused handshake is
retried (live and on resume), and the ready file counts only clients still connected."""

import asyncio
import json
import threading

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from bench import wsclients


def event(event_id: str) -> str:
    return json.dumps({"kind": "event", "event": {"id": event_id}})


async def pong(ws) -> None:
    """A fresh client's ping, answered: bench.wsclients counts a client connected once the
    server has answered (daphne's consumer answers after it has joined the groups)."""
    assert json.loads(await ws.recv()) == {"kind": "ping"}
    await ws.send(json.dumps({"kind": "pong"}))


def test_clients_record_live_frames_then_the_replay(tmp_path, monkeypatch):
    monkeypatch.setattr(wsclients, "CONNECT_ATTEMPTS", 3)
    handshakes: list[str] = []

    def refuse_first_try(connection, request):
        handshakes.append(request.path)
        if request.path.startswith("/flaky") and handshakes.count(request.path) == 1:
            return Response(500, "Internal Server Error", Headers(), b"")
        return None

    async def handler(ws):
        if "after=" in ws.request.path:
            await ws.send(event("e1"))
            await ws.send(event("e2"))
            await ws.send(json.dumps({"kind": "replayed", "through": 2}))
            await ws.wait_closed()
            return
        if ws.request.path.startswith("/closed"):
            await ws.close(code=4403)
            return
        await pong(ws)
        while not (tmp_path / "ready").exists():
            await asyncio.sleep(0.01)
        await ws.send(event("e1"))
        await ws.send(event("e1"))  # a duplicate: stamped once
        await ws.wait_closed()

    async def main():
        async with serve(handler, "127.0.0.1", 0, process_request=refuse_first_try) as server:
            port = server.sockets[0].getsockname()[1]
            spec = {
                "base": f"ws://127.0.0.1:{port}",
                "clients": [
                    {"name": "a", "path": "/ok/?token=a", "groups": ["g"]},
                    {"name": "b", "path": "/flaky/?token=b", "groups": ["g"]},
                    {"name": "c", "path": "/closed/?token=c", "groups": ["g"]},
                ],
                "ready": str(tmp_path / "ready"),
                "stop": str(tmp_path / "stop"),
                "after": 0,
            }

            def stop_later():
                while not (tmp_path / "ready").exists():
                    threading.Event().wait(0.01)
                threading.Event().wait(0.5)
                (tmp_path / "stop").write_text("")

            threading.Thread(target=stop_later, daemon=True).start()
            return await wsclients.run_clients(spec)

    report = asyncio.run(main())
    logs = {log["name"]: log for log in report["clients"]}
    assert json.loads((tmp_path / "ready").read_text())["connected"] == 2  # not "c"
    assert set(logs["a"]["received"]) == {"e1"}
    assert logs["a"]["frames"] == 2
    assert logs["a"]["resumed"] == ["e1", "e2"]
    # The live handshake and the resume's were each refused once, then retried.
    assert len(logs["b"]["connect_retries"]) == 2
    assert set(logs["b"]["received"]) == {"e1"}
    assert logs["b"]["resumed"] == ["e1", "e2"]
    assert logs["a"]["errors"] == [] and logs["b"]["errors"] == []
    assert any("4403" in error for error in logs["c"]["errors"])


def resume_against(handler, clients: list[dict], tmp_path, **spec) -> dict:
    """run_clients' report for `clients` against a websocket server running `handler`, told
    to resume (`spec`: the resume options) as soon as every client is connected."""

    async def main():
        async with serve(handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            (tmp_path / "stop").write_text("")  # resume as soon as every client is connected
            return await wsclients.run_clients({
                "base": f"ws://127.0.0.1:{port}", "clients": clients,
                "ready": str(tmp_path / "ready"), "stop": str(tmp_path / "stop"), **spec,
            })  # fmt: skip

    return asyncio.run(main())


def test_a_client_resumes_from_its_own_point_when_it_has_one(tmp_path):
    """Scenario `reconnect` gives each client the sequence it is behind from."""
    resumed_from: dict[str, str] = {}

    async def handler(ws):
        path = ws.request.path
        if "after=" in path:
            resumed_from[path.split("?token=")[1].split("&")[0]] = path.rsplit("after=", 1)[1]
            await ws.send(json.dumps({"kind": "replayed", "through": 9}))
        else:
            await pong(ws)
        await ws.wait_closed()

    clients = [
        {"name": "own", "path": "/ws/?token=own", "groups": ["g"], "after": 7},
        {"name": "spec", "path": "/ws/?token=spec", "groups": ["g"]},
    ]
    report = resume_against(handler, clients, tmp_path, after=3, resume_concurrency=1)
    assert resumed_from == {"own": "7", "spec": "3"}
    assert all(log["errors"] == [] for log in report["clients"])


def test_how_each_resume_ended_is_kept_with_the_close_code(tmp_path):
    """Scenario `reconnect` counts these: a client closed as a slow consumer shows as such, not
    as a short replay."""

    async def handler(ws):
        path = ws.request.path
        if "after=" in path:
            await ws.send(event("e1"))
            if path.startswith("/slow"):
                await ws.send(json.dumps({"kind": "error", "code": "slow_consumer"}))
                await ws.close(code=4408)
                return
            if path.startswith("/cut"):
                await ws.close(code=4403)
                return
            await ws.send(json.dumps({"kind": "replayed", "through": 1}))
        else:
            await pong(ws)
        await ws.wait_closed()

    clients = [
        {"name": name, "path": f"/{name}/?token={name}", "groups": ["g"]}
        for name in ("ok", "slow", "cut")
    ]
    report = resume_against(handler, clients, tmp_path, after=0)
    ends = {log["name"]: log["resume_end"] for log in report["clients"]}
    assert ends == {
        "ok": "replayed",
        "slow": "error slow_consumer, closed 4408",
        "cut": "closed 4403",
    }
    assert report["resume_cpu_seconds"] > 0
