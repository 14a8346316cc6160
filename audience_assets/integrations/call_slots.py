"""A cap on concurrent calls shared by every process on a machine: slot i is an exclusive `flock`
on `<folder>/slot-<i>.lock`. Account runs in processes of their own (the CLI's fan-out, a local
daemon's run queue) take a slot around each Meta request, so however many run at once, at most
`limit` requests are in flight; the kernel frees a dead process's slot."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from audience_assets.engine.config import count_setting

META_CALLS_ENV = "AUDIENCE_ENGINE_META_MAX_CALLS"
DEFAULT_META_CALLS = 4


def meta_call_limit() -> int:
    """AUDIENCE_ENGINE_META_MAX_CALLS, default 4 (ConfigError naming the setting when not a whole number >= 1)."""
    return count_setting(META_CALLS_ENV, os.environ.get(META_CALLS_ENV), DEFAULT_META_CALLS, "calls")


def default_folder(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"audience-engine-slots-{os.getuid()}" / name


class CallSlots:
    """At most `limit` holders at once across processes sharing `folder`."""

    def __init__(
        self, limit: int, folder: Path, poll_seconds: float = 0.02, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if limit < 1:
            raise ValueError(f"a call cap must be 1 or more, not {limit}")
        self.limit = limit
        self.folder = Path(folder)
        self.poll_seconds = poll_seconds
        self.waited_seconds = 0.0
        self._sleep = sleep

    def _try(self) -> int | None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for i in range(self.limit):
            fd = os.open(self.folder / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    @contextmanager
    def held(self) -> Iterator[None]:
        started = time.monotonic()
        fd = self._try()
        while fd is None:
            self._sleep(self.poll_seconds)
            fd = self._try()
        self.waited_seconds += time.monotonic() - started
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
