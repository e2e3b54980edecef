"""The output file of a dataset run: append-only JSON lines that survive a crash.

Each finished row is one line, written with a single `write` on a file opened in append
mode (the kernel has it once `write` returns, even if the process is then killed) under a
lock, and `fsync`ed at intervals. A run killed mid-write can leave at most one torn last
line: opening the file again finds it and cuts it off before anything is appended.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_fusion.batch._rows import id_key

#: Seconds between two `fsync`s of the output (each line is written at once regardless).
FSYNC_EVERY_S = 1.0


class OutFile:
    """The output of a run: what it already holds, and appending finished rows.

    Args:
        path: The `.jsonl` file; created if missing.
        retry_failed: Drop the rows recorded as failed, so that they run again.

    Attributes:
        done: Keys (`id_key`) of the rows already answered.
        failed: Keys of the rows recorded as failed (left in place unless `retry_failed`).
        torn: Bytes of a torn last line that was cut off, 0 when the file was whole.
        unreadable: Line numbers of complete lines that are not JSON rows (left in place).
    """

    def __init__(self, path: str | Path, *, retry_failed: bool = False) -> None:
        self.path = Path(path)
        self.done: set[str] = set()
        self.failed: set[str] = set()
        self.unreadable: list[int] = []
        self.torn = 0
        self._lock = threading.Lock()
        self._synced = time.monotonic()
        kept = self._load(retry_failed)
        if retry_failed and self.failed:
            self._rewrite(kept)
            self.failed = set()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _load(self, retry_failed: bool) -> list[bytes]:
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.torn = len(data) - end
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                os.fsync(handle.fileno())
        kept = []
        for number, line in enumerate(data[:end].splitlines(keepends=True), start=1):
            try:
                record = json.loads(line)
                key = id_key(record["id"])
                status = record.get("status")
            except (ValueError, KeyError, TypeError):
                self.unreadable.append(number)
                kept.append(line)
                continue
            if status == "ok":
                self.done.add(key)
            else:
                self.failed.add(key)
                if retry_failed:
                    continue
            kept.append(line)
        return kept

    def _rewrite(self, lines: list[bytes]) -> None:
        # Written aside and renamed over: a crash leaves the old file or the new, whole.
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "wb") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)

    def has(self, key: str) -> bool:
        """Whether the row with this key is already in the file (answered or failed)."""
        return key in self.done or key in self.failed

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one row as one complete line."""
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            written = 0
            while written < len(line):  # a short write only happens on a full disk or signal
                written += os.write(self._fd, line[written:])
            key = id_key(record["id"])
            (self.done if record.get("status") == "ok" else self.failed).add(key)
            now = time.monotonic()
            if now - self._synced >= FSYNC_EVERY_S:
                os.fsync(self._fd)
                self._synced = now

    def close(self) -> None:
        """Flush to disk and close."""
        with self._lock:
            if self._fd < 0:
                return
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> OutFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
