"""Checkpoints of a run folder, in a format standard tools read and that loads without the
unpickler.

A checkpoint is one `safetensors <https://huggingface.co/docs/safetensors>`_ file: every
tensor (model weights under ``model/<name>``, optimizer state under ``optimizer/...``, RNG
states under ``rng/...``) in the tensor table, and a small JSON manifest in the header's
``__metadata__["spikefuse"]``: format and version, run id, epoch, the non-tensor rest of the
checkpoint (config, history, schedule, ...) with references to the tensors, and a SHA-256
checksum over the manifest, the tensor table and the tensor bytes. One file, so that one
``os.replace`` swaps it atomically; :func:`load_checkpoint` verifies the checksum before it
decodes anything, and decoding is JSON plus raw tensor bytes: no pickle anywhere.

Read the weights without spikefuse::

    from safetensors.torch import load_file
    weights = {k[len("model/"):]: v for k, v in load_file("checkpoint.safetensors").items()
               if k.startswith("model/")}
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from pathlib import Path

import torch

CHECKPOINT_NAME = "checkpoint.safetensors"
_FORMAT = "spikefuse-checkpoint"
_VERSION = 2
_PREFIX = b'{"__metadata__":{"spikefuse":"'
_LEGACY_MAGIC = b"SPIKEFUSE-CHECKPOINT\x00v1\n"
_MAX_HEADER = 100 * 2 ** 20  # safetensors' own header limit
#: what a training checkpoint must hold (see :func:`check_train_checkpoint`)
TRAIN_KEYS = ("format", "run_id", "epoch", "config", "model", "optimizer", "schedule", "history",
              "rng", "train_time_s")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or not a spikefuse checkpoint."""


# ------------------------------------------------------------------ atomic files
def temp_name(path: Path) -> Path:
    """A temporary name beside ``path``, unique to this process and call."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def atomic_write(path, data: bytes) -> None:
    """Write ``data`` to a unique temporary file in ``path``'s folder, fsync it and
    ``os.replace`` it onto ``path``; the temporary file is removed when anything fails."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


# ------------------------------------------------------------------ tree <-> JSON + tensors
def _encode(node, tensors: dict, key: str):
    """JSON-able form of ``node``; tensors go to ``tensors[key]`` and leave a reference."""
    if isinstance(node, torch.Tensor):
        tensors[key] = node.detach().to("cpu").clone().contiguous()
        return {"__tensor__": key}
    if isinstance(node, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in node):
            return {k: _encode(v, tensors, f"{key}/{k}") for k, v in node.items()}
        return {"__items__": [[k, _encode(v, tensors, f"{key}/{k}")] for k, v in node.items()]}
    if isinstance(node, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{key}/{i}") for i, v in enumerate(node)]}
    if isinstance(node, list):
        return [_encode(v, tensors, f"{key}/{i}") for i, v in enumerate(node)]
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    raise TypeError(f"checkpoint: cannot store {type(node).__name__} at {key!r} "
                    "(tensors, dicts, lists, tuples, numbers, strings and None only)")


def _decode(node, tensors: dict):
    if isinstance(node, list):
        return [_decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        return tensors[node["__tensor__"]]
    if "__tuple__" in node:
        return tuple(_decode(v, tensors) for v in node["__tuple__"])
    if "__items__" in node:
        return {k: _decode(v, tensors) for k, v in node["__items__"]}
    return {k: _decode(v, tensors) for k, v in node.items()}


def _digest(manifest: dict, index: dict, data: bytes) -> str:
    body = {k: v for k, v in manifest.items() if k != "sha256"}
    h = hashlib.sha256(json.dumps(index, sort_keys=True).encode())
    h.update(b"\0" + json.dumps(body, sort_keys=True).encode() + b"\0")
    h.update(data)
    return h.hexdigest()


def _split_file(raw: bytes):
    """``(header dict, data section)`` of safetensors bytes (no checks: bytes we just made)."""
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


# ------------------------------------------------------------------ save / load
def save_checkpoint(path, obj: dict) -> None:
    """Write ``obj`` (nested dicts/lists/tuples of tensors, numbers, strings) atomically as
    a safetensors file with a checksummed JSON manifest (module docstring).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.safetensors")
    >>> save_checkpoint(p, {"w": torch.ones(2)}); load_checkpoint(p)["w"]
    tensor([1., 1.])
    """
    from safetensors.torch import save

    if not isinstance(obj, dict):
        raise TypeError(f"obj: expected a dict, got {type(obj).__name__}")
    tensors: dict = {}
    tree = {k: _encode(v, tensors, k) for k, v in obj.items()}
    manifest = {"format": _FORMAT, "version": _VERSION, "run_id": obj.get("run_id"),
                "epoch": obj.get("epoch"), "tree": tree}
    header, data = _split_file(save(tensors))
    header.pop("__metadata__", None)
    manifest["sha256"] = _digest(manifest, header, data)
    atomic_write(path, save(tensors, metadata={"spikefuse": json.dumps(manifest)}))


def _parse(raw: bytes, name: str):
    """``(manifest, tensor table, data section)``, checking sizes before reading further."""
    looks = raw[8:8 + len(_PREFIX)]
    if len(raw) < 8:
        plausible = all(b == 0 for b in raw[4:])
        raise CheckpointError(f"checkpoint {name} is {'truncated' if plausible else 'not a spikefuse checkpoint'}"
                              f" ({len(raw)} bytes, header incomplete)")
    if raw.startswith(_LEGACY_MAGIC):
        raise CheckpointError(f"checkpoint {name} is in the old pickle-based format (spikefuse 0.1 "
                              "checkpoint.pt); it is not loaded because reading it needs the unpickler")
    if not _PREFIX.startswith(looks):
        raise CheckpointError(f"checkpoint {name} is not a spikefuse checkpoint (bad header)")
    n = int.from_bytes(raw[:8], "little")
    if n > _MAX_HEADER:
        raise CheckpointError(f"checkpoint {name} is not a spikefuse checkpoint (header of {n} bytes)")
    if len(raw) < 8 + n:
        raise CheckpointError(f"checkpoint {name} is truncated ({len(raw)} bytes, header declares {n})")
    try:
        header = json.loads(raw[8:8 + n])
        manifest = json.loads(header.pop("__metadata__")["spikefuse"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint {name} is corrupt: unreadable manifest ({e})") from None
    data = raw[8 + n:]
    try:
        size = max((int(t["data_offsets"][1]) for t in header.values()), default=0)
    except (KeyError, TypeError, ValueError, IndexError):
        raise CheckpointError(f"checkpoint {name} is corrupt: unreadable tensor table") from None
    if len(data) < size:
        raise CheckpointError(f"checkpoint {name} is truncated: {len(data)} of {size} tensor bytes")
    if len(data) > size:
        raise CheckpointError(f"checkpoint {name} is padded: {len(data) - size} bytes after the tensors")
    return manifest, header, data


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`: sizes and SHA-256 checksum are
    verified before anything is decoded, and nothing is unpickled.

    Raises :class:`CheckpointError` (a ``ValueError``) naming the file and the problem for a
    missing, truncated, corrupt or foreign file.
    """
    from safetensors.torch import load

    path = Path(path)
    name = repr(str(path))
    if not path.is_file():
        raise CheckpointError(f"checkpoint: file not found: {name}")
    raw = path.read_bytes()
    manifest, index, data = _parse(raw, name)
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
        raise CheckpointError(f"checkpoint {name} is not a spikefuse checkpoint (no spikefuse manifest)")
    if manifest.get("sha256") != _digest(manifest, index, data):
        raise CheckpointError(f"checkpoint {name} is corrupt: SHA-256 checksum mismatch")
    if manifest.get("version") != _VERSION:
        raise CheckpointError(f"checkpoint {name} has format version {manifest.get('version')!r}; "
                              f"this spikefuse reads version {_VERSION}")
    try:
        tensors = load(raw)
        if map_location not in (None, "cpu"):
            tensors = {k: v.to(map_location) for k, v in tensors.items()}
        tree = manifest["tree"]
        return {k: _decode(v, tensors) for k, v in tree.items()}
    except Exception as e:  # checksum fine but unreadable: written by something else
        raise CheckpointError(f"checkpoint {name} could not be decoded: {e}") from None


def check_train_checkpoint(ck: dict, path) -> None:
    """A training checkpoint has every key :func:`train` needs, an epoch in
    ``1..config.epochs`` that matches its history, and a run id."""
    name = repr(str(path))
    missing = [k for k in TRAIN_KEYS if k not in ck]
    if missing:
        raise CheckpointError(f"checkpoint {name} is not a training checkpoint: missing {missing}")
    epoch, cfg, hist = ck["epoch"], ck["config"], ck["history"]
    if not isinstance(cfg, dict) or not isinstance(hist, list) or not isinstance(ck["model"], dict):
        raise CheckpointError(f"checkpoint {name}: config/model/history have the wrong types")
    total = cfg.get("epochs")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not isinstance(total, int) \
            or not 1 <= epoch <= total:
        raise CheckpointError(f"checkpoint {name}: epoch must be an integer in 1..{total!r} "
                              f"(the run's epochs), got {epoch!r}")
    if len(hist) != epoch:
        raise CheckpointError(f"checkpoint {name}: epoch {epoch} but {len(hist)} history records")
    if not isinstance(ck["run_id"], str) or not ck["run_id"]:
        raise CheckpointError(f"checkpoint {name}: run_id must be a non-empty string, got {ck['run_id']!r}")


def _schedule_state(sched) -> dict:
    """The scheduler state without callables (some torch versions keep the annealing function
    there); the rebuilt scheduler already holds them."""
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
