"""Size checks that run before a file reader allocates anything (issue 12, item 2).

A crafted file can declare sizes its bytes do not hold (an HDF5 dataset of 10**9 labels whose
chunks were never written takes a few bytes on disk; a ``.npy`` header can promise any shape).
Every reader in :mod:`spikefuse.data` compares what a file declares with what it really holds and
with the sane limits below **before** reading, and refuses with one line naming the file and what
is wrong (:class:`~spikefuse.data.events.CorruptDatasetError`).

The limits are module attributes, far above every published sample of the supported data sets
(an SHD sample holds ~10**4 spikes, a DVS Gesture recording ~10**6 events); raise them by
assignment if a data set of yours needs more::

    import spikefuse.data._limits as limits
    limits.MAX_EVENTS_PER_SAMPLE = 1 << 28
"""
from __future__ import annotations

import os

__all__ = ["MAX_EVENTS_PER_SAMPLE", "MAX_SAMPLES", "MAX_FILE_BYTES", "check_file_size", "check_count"]

MAX_EVENTS_PER_SAMPLE = 1 << 26  # 67 M events in one sample
MAX_SAMPLES = 1 << 24  # 16.7 M samples in one file
MAX_FILE_BYTES = 1 << 32  # 4 GiB for one per-sample event file (N-MNIST .bin, Gesture .npy, .aedat)


def _error(msg: str):
    from .events import CorruptDatasetError

    return CorruptDatasetError(msg)


def check_file_size(path: str, *, limit: int | None = None) -> int:
    """The size of ``path`` in bytes; refuses files above ``limit`` (default MAX_FILE_BYTES)."""
    size = os.path.getsize(path)
    limit = MAX_FILE_BYTES if limit is None else limit
    if size > limit:
        raise _error(
            f"{path}: {size} bytes is larger than any sample file of this data set "
            f"(limit {limit} bytes, spikefuse.data._limits.MAX_FILE_BYTES); refusing to read it"
        )
    return size


def check_count(path: str, what: str, n: int, *, limit: int, nbytes: int | None = None, size: int | None = None):
    """Refuse a declared count ``n`` above ``limit``, or whose ``nbytes`` exceed the file ``size``."""
    if n < 0 or n > limit:
        raise _error(f"{path}: declares {n} {what}, outside the sane range [0, {limit}]; corrupt or crafted file")
    if nbytes is not None and size is not None and nbytes > size:
        raise _error(
            f"{path}: declares {n} {what} ({nbytes} bytes) but the file holds only {size} bytes; "
            "truncated, corrupt or crafted file"
        )
