"""``from twister2.tset.fn.SourceFunc import SourceFunc``: twister_nb's, the same protocol
(``has_next()``/``next()``, optional ``prepare(ctx)``)."""

from twister_nb import SourceFunc

__all__ = ["SourceFunc"]
