"""What the chaos run's clients, monitor and fault injector share: a daemon thread that runs
`_run` from `start` until `stop` sets `stop_event`."""

import threading


class Background:
    # How long `stop` waits for `_run` to return, in seconds.
    JOIN_TIMEOUT = 20.0

    def __init__(self, name: str) -> None:
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=self.JOIN_TIMEOUT)
