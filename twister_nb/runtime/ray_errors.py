"""Ray's errors in words: one line a person can read, for every message we show.

Ray's exceptions carry multi-line messages with colour codes and, for a
failed actor constructor or task, the user's own error at their end. The
driver (a lost JobMaster) and the JobMaster (a lost worker) both say them
in one line.
"""

from __future__ import annotations

import re

#: A terminal colour or cursor code, as Ray writes them into its messages.
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def ray_error_line(exc: BaseException) -> str:
    """A Ray error in one line of words: the exception line that ends its
    message (for an actor whose constructor raised: the user's own error, e.g.
    ``NotADirectoryError: ...``), without Ray's colour codes."""
    lines = [line.strip() for line in ANSI_CODE.sub("", str(exc)).splitlines() if line.strip()]
    cause = next((line for line in reversed(lines)
                  if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b", line)), None)
    return cause or f"{type(exc).__name__}: {lines[0] if lines else ''}"
