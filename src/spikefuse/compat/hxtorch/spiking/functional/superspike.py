"""``hxtorch.spiking.functional.superspike``: ``SuperSpike.apply(input, alpha)`` and
``superspike_func(input, alpha)`` over :func:`spikefuse.functional.cuba.superspike`."""
from spikefuse.functional.cuba import superspike as _superspike

__all__ = ["SuperSpike", "superspike_func"]


class SuperSpike:
    """``SuperSpike.apply(input, alpha)``: forward ``1[input > 0]``, backward
    ``grad / (alpha |input| + 1)^2`` (SPEC 2.3)."""

    @staticmethod
    def apply(input, alpha):
        return _superspike(input, alpha)


def superspike_func(input, alpha):
    return SuperSpike.apply(input, alpha)
