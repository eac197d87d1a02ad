"""Process-group facts for multi-process training under ``torchrun`` (``WORLD_SIZE > 1``):
NCCL on CUDA, Gloo on CPU; the device of this process."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


@dataclass
class DistInfo:
    """Process-group facts of this process (``world_size == 1`` when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(pref: str, local_rank: int = 0) -> torch.device:
    if pref == "cuda" or (pref == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device: 'cuda' requested but no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise ``torch.distributed`` when launched by ``torchrun`` (``WORLD_SIZE > 1``):
    NCCL on CUDA, Gloo on CPU. Returns this process's :class:`DistInfo`.

    >>> init_distributed("cpu").world_size        # not under torchrun
    1
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = _pick_device(device, local_rank)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank, world, local_rank, dev)

