"""Test helper: which tensors the numba CPU glue copied to contiguous although they were
broadcast views."""
from spikefuse.kernels.cpu import jit


def broadcast_copies(monkeypatch) -> list:
    """Records every broadcast view (a zero stride over more than one element) handed to
    ``jit.np32`` (which copies to a full contiguous array); returns the list of their shapes."""
    copied, orig = [], jit.np32

    def spy(t, ndim=1):
        if t is not None and t.numel() > 1 and 0 in t.stride():
            copied.append(tuple(t.shape))
        return orig(t, ndim)

    monkeypatch.setattr(jit, "np32", spy)
    return copied
