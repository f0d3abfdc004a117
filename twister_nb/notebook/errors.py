"""The notebook layer's user errors.

A :class:`UsageError` is a subclass of IPython's when IPython is installed, so
the plain functions the magics call raise what the magics would. IPython shows
only its own class exactly as one line (``etype is UsageError``); a subclass
would get a whole traceback, so this one draws itself through
``_render_traceback_`` (IPython's hook): ``UsageError: <message>``, nothing
else. ``error_type`` tags the category, as jupysql does:

* ``usage`` -- a flag or argument is wrong,
* ``state`` -- the notebook is not in a state for the command (no job yet),
* ``not_found`` -- no such job or variable.
"""

from __future__ import annotations

try:
    from IPython.core.error import UsageError as _Base
except ImportError:  # pragma: no cover - IPython comes with ipykernel
    _Base = Exception  # type: ignore[misc,assignment]

ERROR_TYPES = ("usage", "state", "not_found")


class UsageError(_Base):  # type: ignore[misc,valid-type]
    """A user mistake, reported in one line that names the flag and the fix."""

    def __init__(self, message: str, error_type: str = "usage") -> None:
        assert error_type in ERROR_TYPES, error_type
        super().__init__(message)
        self.error_type = error_type

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of a traceback: the message, one line."""
        return [f"UsageError: {self}"]

