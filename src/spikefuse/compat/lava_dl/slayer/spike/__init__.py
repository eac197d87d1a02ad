"""``slayer.spike``: the real (``Spike``) and complex (``complex.Spike``) spike functions."""
from . import complex, spike
from .spike import Spike

__all__ = ["Spike", "complex", "spike"]
