"""Checks of an SHD/SSC HDF5 file's declared sizes before anything is read (see :mod:`._limits`).

HDF5 stores a variable-length array element as a descriptor in the dataset's raw storage: a
4-byte little-endian element count, then a global-heap id (an address of the file's offset size
and a 4-byte index). The counts are read straight from those bytes, so the length of every
sample is known - and checked against the file's size - before h5py allocates its buffer.
Compressed layouts hide the descriptors; there only the dataset-level checks apply.
"""
from __future__ import annotations

import os

import numpy as np

from . import _limits
from ._limits import _error


def _shape1d(path: str, key: str, ds) -> int:
    if ds.shape is None or len(ds.shape) != 1:
        got = "a scalar" if ds.shape == () else f"shape {ds.shape}"
        raise _error(f"{path}: /{key} must be a 1-D dataset (one entry per sample), got {got}")
    return int(ds.shape[0])


def _stored_bytes(ds) -> int:
    try:
        return int(ds.id.get_storage_size())
    except Exception:  # pragma: no cover - h5py without the call
        return -1


def check_fixed(path: str, key: str, ds, size: int) -> int:
    """A 1-D fixed-size dataset (labels): count within limits, bytes really stored."""
    n = _shape1d(path, key, ds)
    _limits.check_count(path, f"entries in /{key}", n, limit=_limits.MAX_SAMPLES)
    nbytes = n * ds.dtype.itemsize
    stored = _stored_bytes(ds)
    if ds.compression is None and 0 <= stored < nbytes:
        raise _error(
            f"{path}: /{key} declares {n} entries ({nbytes} bytes) but stores only {stored} bytes; "
            "truncated, corrupt or crafted file"
        )
    return n


def _descriptor_bytes(ds, n: int, stride: int, path: str, key: str, size: int):
    """Raw descriptor bytes of a contiguous or uncompressed chunked vlen dataset; None if hidden."""
    stored = _stored_bytes(ds)
    if ds.compression is not None or ds.id.get_create_plist().get_nfilters() > 0:
        return None
    if stored < n * stride:
        raise _error(
            f"{path}: /{key} declares {n} samples ({n * stride} bytes of descriptors) but stores "
            f"only {stored} bytes; truncated, corrupt or crafted file"
        )
    if ds.chunks is None:
        offset = ds.id.get_offset()
        if offset is None or offset + n * stride > size:
            raise _error(f"{path}: /{key} points outside the file; truncated or corrupt file")
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read(n * stride)
    rows = ds.chunks[0]
    parts = []
    for start in range(0, n, rows):
        _, raw = ds.id.read_direct_chunk((start,))
        parts.append(raw[: min(rows, n - start) * stride])
    return b"".join(parts)


def vlen_lengths(path: str, key: str, ds, size: int, offset_size: int):
    """Per-sample element counts of vlen dataset ``/key`` (or None for compressed layouts).

    Refuses a dataset that is not 1-D vlen, declares more samples than the limits or bytes than
    stored, or whose elements add up to more bytes than the file holds.
    """
    n = _shape1d(path, key, ds)
    _limits.check_count(path, f"samples in /{key}", n, limit=_limits.MAX_SAMPLES)
    base = _vlen_base(ds)
    if base is None:
        raise _error(f"{path}: /{key} must hold variable-length arrays (one per sample), got dtype {ds.dtype}")
    stride = 4 + offset_size + 4
    raw = _descriptor_bytes(ds, n, stride, path, key, size)
    if raw is None:
        return None
    lengths = np.frombuffer(raw, dtype=np.uint8).reshape(n, stride)[:, :4].copy().view("<u4")[:, 0]
    lengths = lengths.astype(np.int64)
    if n and lengths.max() > _limits.MAX_EVENTS_PER_SAMPLE:
        i = int(lengths.argmax())
        _limits.check_count(path, f"events in sample {i} of /{key}", int(lengths[i]),
                            limit=_limits.MAX_EVENTS_PER_SAMPLE)
    total = int(lengths.sum()) * base.itemsize
    _limits.check_count(path, f"events in /{key} (all samples)", int(lengths.sum()),
                        limit=_limits.MAX_SAMPLES * _limits.MAX_EVENTS_PER_SAMPLE, nbytes=total, size=size)
    return lengths


def _vlen_base(ds):
    import h5py

    return h5py.check_vlen_dtype(ds.dtype)


def check_heidelberg_layout(path: str, f) -> tuple[int, object]:
    """Check /spikes/times, /spikes/units and /labels of an open file.

    Returns ``(n, lengths)``: ``lengths`` is ``(times counts, units counts)`` per sample, or None
    where the layout is compressed. Mismatched counts are reported when that sample is read.
    """
    size = os.path.getsize(path)
    offset_size = f.id.get_create_plist().get_sizes()[0]
    n = check_fixed(path, "labels", f["labels"], size)
    lengths = {}
    for key in ("spikes/times", "spikes/units"):
        lengths[key] = vlen_lengths(path, key, f[key], size, offset_size)
        if int(f[key].shape[0]) != n:
            raise _error(
                f"{path}: inconsistent lengths: {n} labels, {f['spikes/times'].shape[0]} spike-time "
                f"arrays, {f['spikes/units'].shape[0]} unit arrays (truncated or corrupt file)"
            )
    lt, lu = lengths["spikes/times"], lengths["spikes/units"]
    return n, (None if lt is None or lu is None else (lt, lu))
