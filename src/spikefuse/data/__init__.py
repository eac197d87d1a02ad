"""spikefuse.data — datasets generated in code, shipped small ones, event-file loaders, encoders.

(The full registry, ``get_dataset``, is being written; Yin-Yang is available now.)
"""
from __future__ import annotations

from .yinyang import YinYang, make_yinyang, yinyang_class

__all__ = ["YinYang", "make_yinyang", "yinyang_class"]
