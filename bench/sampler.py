"""A small sampling profiler for one thread (the app's uvicorn thread): what is it doing, every millisecond.

cProfile only sees the thread that enables it and splits coroutines at every await; sampling the thread's
stack from another thread shows where the wall time of async request handling goes. Used by `--profile`.
"""

from __future__ import annotations

import collections
import sys
import threading
import time


class Sampler:
    """Samples a thread's Python stack at an interval; `report` lists the hottest frames (own + inclusive)."""

    def __init__(self, thread_id: int, interval: float = 0.001) -> None:
        self.thread_id = thread_id
        self.interval = interval
        self.inclusive: collections.Counter[str] = collections.Counter()
        self.own: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = sys._current_frames().get(self.thread_id)
            if frame is not None:
                seen: set[str] = set()
                first = True
                while frame is not None:
                    code = frame.f_code
                    key = f"{code.co_filename.rsplit('site-packages/', 1)[-1]}:{code.co_firstlineno} {code.co_name}"
                    if first:
                        self.own[key] += 1
                        first = False
                    if key not in seen:
                        self.inclusive[key] += 1
                        seen.add(key)
                    frame = frame.f_back
                self.samples += 1
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, top: int = 25, only: str | None = None) -> str:
        """The hottest frames; `only` keeps frames whose key contains it (e.g. "smart_app")."""
        lines = [f"{self.samples} samples"]
        for title, counter in (("inclusive", self.inclusive), ("own", self.own)):
            lines.append(f"-- {title}")
            for key, count in counter.most_common():
                if only and only not in key and title == "inclusive":
                    continue
                lines.append(f"{100 * count / max(self.samples, 1):5.1f}%  {key}")
                if len(lines) > top * (2 if title == "own" else 1) + 3:
                    break
        return "\n".join(lines)


def thread_serving(port: int) -> int:
    """The id of the uvicorn thread serving `port` (the thread whose frames hold that server)."""
    for ident, frame in sys._current_frames().items():
        while frame is not None:
            server = frame.f_locals.get("self")
            config = getattr(server, "config", None)
            if config is not None and getattr(server, "servers", None) is not None:
                for s in server.servers:
                    for sock in getattr(s, "sockets", ()):
                        if sock.getsockname()[1] == port:
                            return ident
            frame = frame.f_back
    raise LookupError(f"no uvicorn thread serves port {port}")
