"""One owner per run folder: an exclusive lock held for the run's life, and the checks that
a folder is free for a new run or belongs to the run being resumed.

The lock is ``<out>/.lock``, held with ``fcntl.flock`` (released by the operating system
when the process ends in any way, ``kill -9`` included) and removed on a clean exit. A lock
file found unheld is a stale lock of a process that died: it is taken over and reported.
Where ``fcntl`` is missing (Windows) the file is created exclusively and a lock whose process
is no longer running counts as stale.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Optional

from .checkpoint import CHECKPOINT_NAME, CheckpointError
from .config import ConfigError, config_run_id

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".lock"


class RunFolderError(ConfigError):
    """A run folder that is in use by another process or holds another run."""


def _describe(raw: str) -> str:
    try:
        d = json.loads(raw)
        return f"process {d['pid']} on {d['host']} (run {d['run_id']}, since {d['started']})"
    except (ValueError, KeyError, TypeError):
        return "another process"


def _pid_alive(pid: int) -> bool:  # pragma: no cover - Windows fallback only
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class RunLock:
    """The exclusive lock of one run folder (see the module docstring)."""

    def __init__(self, folder) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: Optional[int] = None
        self.stale: Optional[str] = None  # description of a stale lock taken over

    def acquire(self, run_id: str) -> "RunLock":
        fd = self._flock() if fcntl is not None else self._exclusive()
        old = os.read(fd, 65536).decode("utf-8", "replace")
        if old.strip():
            self.stale = _describe(old)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        self.fd = fd
        return self

    def _in_use(self) -> RunFolderError:
        try:
            raw = self.path.read_text()
        except OSError:
            raw = ""
        return RunFolderError(f"out: run folder {str(self.folder)!r} is in use by {_describe(raw)} "
                              f"(lock {str(self.path)!r}); wait for it or choose another --out")

    def _flock(self) -> int:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise self._in_use() from None
            try:  # the holder may have removed the file between our open and flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
            os.close(fd)

    def _exclusive(self) -> int:  # pragma: no cover - Windows fallback only
        while True:
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    pid = int(json.loads(self.path.read_text())["pid"])
                except (OSError, ValueError, KeyError, TypeError):
                    pid = -1
                if pid > 0 and _pid_alive(pid):
                    raise self._in_use() from None
                self.stale = _describe(self.path.read_text())
                self.path.unlink()

    def release(self) -> None:
        """Remove the lock file and release the lock (idempotent)."""
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def remove_stale_temps(folder: Path) -> list:
    """Delete temporary files (``.<name>.<pid>.<id>.tmp``) left by a process that died while
    writing; call only while holding the folder's lock."""
    gone = []
    for p in folder.glob(".*.tmp"):
        try:
            p.unlink()
            gone.append(p.name)
        except OSError:
            pass
    return gone


def _checkpoint_run_id(path: Path) -> Optional[str]:
    from .checkpoint import load_checkpoint

    try:
        return load_checkpoint(path).get("run_id")
    except CheckpointError:
        return None


def check_owner(folder: Path, run_id: str, resuming: bool, source: Optional[Path]) -> None:
    """A new run needs a folder that holds no run; a resumed one, a folder that holds no
    other run than its own (config.toml's run id and the checkpoint's)."""
    cfg_file, ck_file = folder / "config.toml", folder / CHECKPOINT_NAME
    owner = config_run_id(cfg_file) if cfg_file.is_file() else None
    if not resuming:
        if cfg_file.exists() or ck_file.exists() or (folder / "checkpoint.pt").exists():
            held = f"run {owner}" if owner else "a run"
            raise RunFolderError(f"out: {str(folder)!r} already holds {held}; continue it with "
                                 "--resume or choose another --out (nothing was written)")
        return
    if owner is None and ck_file.is_file() and (source is None or ck_file.resolve() != source.resolve()):
        owner = _checkpoint_run_id(ck_file)
    if owner is not None and owner != run_id:
        raise RunFolderError(f"resume: the checkpoint belongs to run {run_id}, but {str(folder)!r} "
                             f"holds run {owner}; resume into its own folder or an empty --out")


def claim(folder, run_id: str, resuming: bool, source: Optional[Path] = None) -> RunLock:
    """Create ``folder`` if needed, take its lock, check it may hold this run and clear stale
    temporary files. On refusal nothing is left behind (a folder created here is removed)."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = RunLock(folder)
    try:
        lock.acquire(run_id)
        check_owner(folder, run_id, resuming, source)
    except BaseException:
        lock.release()
        if created:
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
    if lock.stale:
        print(f"spikefuse train: note: took over a stale lock of {lock.stale} in {str(folder)!r} "
              "(that process is gone)", file=sys.stderr, flush=True)
    remove_stale_temps(folder)
    return lock
