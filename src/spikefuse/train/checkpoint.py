"""Checkpoints of a run folder: written atomically with a length and SHA-256 header, read
back verified; the optimizer schedule and RNG states they carry."""
from __future__ import annotations

import hashlib
import io
import os
import random
import struct
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a spikefuse checkpoint."""


_MAGIC = b"SPIKEFUSE-CHECKPOINT\x00v1\n"
_HEADER = struct.Struct("<Q32s")  # payload length, sha256 digest


def save_checkpoint(path, obj: dict) -> None:
    """Write ``obj`` (``torch.save``-able) atomically with a length and SHA-256 header.

    The bytes go to ``<path>.tmp`` in the same folder, are flushed and fsync'ed, then the
    temporary file replaces ``path`` (``os.replace``), so a reader never sees a half file.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.pt")
    >>> save_checkpoint(p, {"w": torch.ones(2)}); load_checkpoint(p)["w"]
    tensor([1., 1.])
    """
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getvalue()
    header = _MAGIC + _HEADER.pack(len(payload), hashlib.sha256(payload).digest())
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(header)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, verifying length and checksum.

    Raises :class:`CheckpointError` (a ``ValueError``) naming the file and the problem for a
    missing, truncated, corrupt or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint: file not found: {str(path)!r}")
    data = path.read_bytes()
    if not data.startswith(_MAGIC):
        if len(data) < len(_MAGIC) and _MAGIC.startswith(data):
            raise CheckpointError(f"checkpoint {str(path)!r} is truncated ({len(data)} bytes, header incomplete)")
        raise CheckpointError(f"checkpoint {str(path)!r} is not a spikefuse checkpoint (bad header)")
    off = len(_MAGIC)
    if len(data) < off + _HEADER.size:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated ({len(data)} bytes, header incomplete)")
    length, digest = _HEADER.unpack_from(data, off)
    payload = data[off + _HEADER.size:]
    if len(payload) != length:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or padded: expected {length} payload bytes, "
            f"found {len(payload)}"
        )
    if hashlib.sha256(payload).digest() != digest:
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: SHA-256 checksum mismatch")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except Exception as e:  # checksum fine but unreadable: written by something else
        raise CheckpointError(f"checkpoint {str(path)!r} could not be decoded: {e}") from None


def _schedule_state(sched) -> dict:
    """The scheduler state without callables (some torch versions keep the annealing function
    there), so that the checkpoint loads with ``weights_only=True``; the rebuilt scheduler
    already holds them."""
    return {k: v for k, v in sched.state_dict().items() if not callable(v)}


def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
          "python_version": random.getstate()[0], "python_gauss": random.getstate()[2]}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((st["python_version"], tuple(st["python"]), st["python_gauss"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])

