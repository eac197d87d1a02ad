"""``hxtorch.spiking.functional.threshold``: ``threshold(input, method, alpha)`` (imported by
hxtorch's ``lif`` as ``spiking_threshold``), over :func:`spikefuse.functional.cuba.spiking_threshold`.

>>> import torch
>>> threshold(torch.tensor([-0.1, 0.0, 0.2]), "superspike", 50.0).tolist()
[0.0, 0.0, 1.0]
"""
from spikefuse.functional.cuba import spiking_threshold as _spiking_threshold

__all__ = ["threshold"]


def threshold(input, method, alpha):
    """Heaviside ``1[input > 0]`` with the SuperSpike surrogate (``method == "superspike"``;
    any other method raises ``ValueError``, as upstream)."""
    if method != "superspike":
        raise ValueError(f"Threshold function '{method}' is not implemented yet (method: expected 'superspike')")
    return _spiking_threshold(input, method, alpha)
