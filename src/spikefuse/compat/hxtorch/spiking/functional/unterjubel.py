"""``hxtorch.spiking.functional.unterjubel``: ``Unterjubel.apply(input, input_prime)`` returns
``input_prime`` and passes the gradient to ``input`` (SPEC 13.5), over
:func:`spikefuse.functional.cuba.inject`.

>>> import torch
>>> a = torch.zeros(2, requires_grad=True)
>>> y = Unterjubel.apply(a, torch.tensor([1.0, 2.0])); y.sum().backward()
>>> y.tolist(), a.grad.tolist()
([1.0, 2.0], [1.0, 1.0])
"""
import torch

from spikefuse._validate import _describe
from spikefuse.functional.cuba import inject

__all__ = ["Unterjubel"]


class Unterjubel:
    """Inject a (hardware) observable: forward ``input_prime``, gradient to ``input``."""

    @staticmethod
    def apply(input, input_prime):
        for name, t in (("input", input), ("input_prime", input_prime)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{name}: expected a torch.Tensor, got {_describe(t)}")
        return inject(input, input_prime)
