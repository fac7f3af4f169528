"""A private RabbitMQ: a second node on this machine, owned by one run.

Its own node name, AMQP and distribution ports, HOME (so its own Erlang cookie), config,
enabled-plugins file (none: no management plugin), Mnesia and log directories, all under the
run's temporary directory. Nothing of the shared broker (5672, `/etc/rabbitmq`,
`/var/lib/rabbitmq`) is read or touched; the node only registers its name with the machine's
epmd, as every Erlang node does. It runs in the foreground under `rabbitmq-server`'s own script,
which turns SIGTERM into a clean shutdown.
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from devtools.processes import Process, free_port, wait_until

# The script itself, not /usr/sbin/rabbitmq-server: that wrapper switches to the `rabbitmq`
# user and the system's directories.
SERVER_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
# The broker stands for one on another machine: its boot at every restart (seconds of CPU on
# a 2-core machine) runs at a lower priority, so it does not take its CPU from the cluster
# under test (websocket lag during a bus outage measures our system, not the broker's boot).
NICENESS = 10


def server_command() -> str:
    return SERVER_SCRIPT if os.path.exists(SERVER_SCRIPT) else "rabbitmq-server"


class RabbitMQServer:
    """A RabbitMQ node of its own; `name` prefixes its node name (`<name>_<pid>@localhost`)."""

    def __init__(self, workdir: Path, *, name: str) -> None:
        self.base = workdir / "rabbitmq"
        self.node = f"{name}_{os.getpid()}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.process: Process | None = None
        self.starts = 0
        for sub in ("home", "mnesia", "log"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{self.port}\n"
            "log.console = true\nlog.console.level = warning\nlog.file = false\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")
        (self.base / "rabbitmq-env.conf").write_text("")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        base = self.base
        return {
            **os.environ,
            "HOME": str(base / "home"),  # the Erlang cookie is generated here
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),  # absent
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            # One scheduler thread: it stands for a broker on another machine, and its boot (seconds
            # of CPU, at every restart) should leave a core to the cluster under test.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+S 1:1",
        }

    # --- life ---------------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the node without waiting (boot overlaps the database's migration)."""
        self.starts += 1
        self.process = Process(
            ["nice", "-n", str(NICENESS), server_command()],
            log_path=self.base / "server.log", env=self.env(), name="rabbitmq",
        )  # fmt: skip

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            if self.process is None or not self.process.alive():
                raise RuntimeError("rabbitmq-server exited\n" + self.describe())
            return self.answers()

        wait_until(ready, timeout=timeout, message="the private RabbitMQ to answer", interval=0.1)

    def start(self, timeout: float = 60) -> None:
        self.launch()
        self.wait_ready(timeout)

    def answers(self) -> bool:
        """An AMQP connection opens (the port alone opens before the broker serves)."""
        import kombu

        try:
            with kombu.Connection(self.url, connect_timeout=1) as conn:
                conn.ensure_connection(max_retries=0)
            return True
        except Exception:
            return False

    def stop(self, *, crash: bool = False, grace: float = 20.0) -> None:
        """SIGTERM: a clean shutdown; `crash`: SIGKILL to the whole process group (the VM and
        its helpers), as a crash or an OOM kill would."""
        process = self.process
        if process is None or not process.alive():
            return
        if crash:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.proc.wait(timeout=10)
        else:
            process.proc.send_signal(signal.SIGTERM)
            try:
                process.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.proc.wait(timeout=10)
        # What is left of the group (erl_child_setup, inet_gethost) goes with the VM.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _group_alive(process.pid):
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.close()  # closes the log

    def describe(self, tail: int = 30) -> str:
        return self.process.describe(tail) if self.process is not None else "(never started)"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
