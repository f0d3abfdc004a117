"""``twister-nb submit``'s progress on stderr: the start-up steps with their
times and a line per running stage, redrawn in place on a terminal.

Apart from ``cli.py`` so that the commands stay one page each; it is imported
only by ``submit``.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["ProgressLines"]


class ProgressLines:
    """``twister-nb submit``'s view of its job: the start-up steps with their
    times, and a line per running stage (tasks, records in and out, rate).

    They go to ``stream`` (stderr: the program's own output on stdout stays
    as it was, for a pipe to read). On a terminal the stage lines stay at the
    bottom and are redrawn in place (the program's output scrolls above them:
    ``sys.stdout`` is wrapped while it runs); elsewhere (a pipe, a CI log)
    they are plain lines, a stage's at most every ``every`` seconds and once
    more when it ends. The state is the notebook dashboard's
    (:class:`JobProgress`), from the same events.
    """

    def __init__(self, stream: IO[str], tty: bool | None = None, every: float = 1.0) -> None:
        from twister_nb.notebook.progress import JobProgress

        self._stream = stream
        self._out = sys.stdout
        self._tty = stream.isatty() if tty is None else tty
        self._every = every
        self._progress = JobProgress()
        self._said: dict[Any, tuple[str, float]] = {}  # stage key -> (line, when)
        self._steps = 0
        self._block: list[str] = []  # the lines drawn at the bottom (a terminal)
        self._mid_line = False
        if self._tty:
            sys.stdout = self  # type: ignore[assignment]

    # what the program prints goes above the stage lines (a terminal only)
    def write(self, text: str) -> int:
        self._clear()
        self._stream.flush()
        n = self._out.write(text)
        self._out.flush()
        self._mid_line = not text.endswith("\n") if text else self._mid_line
        if not self._mid_line:
            self._draw()
        return n

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return self._out.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)

    def __call__(self, event: Any) -> None:
        from twister_nb.notebook.progress import stage_caption, stage_numbers, startup_line

        self._progress.feed(event)
        state = self._progress.snapshot()
        said: list[str] = []
        for step in state["startup"][self._steps:]:
            if step["state"] != "running":
                self._steps += 1
            if not self._tty or step["state"] != "running":
                said.append(f"[twister-nb] {startup_line(step)}")
        block = []
        now = time.monotonic()
        for stage in state["stages"]:
            key = (stage["action"], stage["index"])
            line = f"[twister-nb] {stage_caption(stage)}: {stage_numbers(stage)} ({stage['state']})"
            ended = stage["state"] in ("done", "failed")
            last = self._said.get(key)
            if self._tty and not ended:
                if stage["state"] != "pending":
                    block.append(line)  # redrawn in place
                continue
            idle = not (stage["done"] or stage["running"] or stage["records_in"])
            if stage["state"] == "pending" or (idle and not ended) or (
                    last is not None and (last[0] == line or (self._tty and ended))):
                continue  # nothing to say yet, or said already
            if ended or last is None or now - last[1] >= self._every:
                self._said[key] = (line, now)
                said.append(line)
        if said or block != self._block:
            self._clear()
            self._stream.write("".join(line + "\n" for line in said))
            self._block = block
            self._draw()
            self._stream.flush()

    def _clear(self) -> None:
        if self._tty and self._block and not self._mid_line:
            self._stream.write(f"\x1b[{len(self._block)}F\x1b[J")  # up, and erase below

    def _draw(self) -> None:
        if self._tty and self._block and not self._mid_line:
            self._stream.write("".join(line + "\n" for line in self._block))
            self._stream.flush()

    def close(self) -> None:
        """Stop drawing (the stage lines stay as they were last drawn)."""
        if self._tty and sys.stdout is self:
            sys.stdout = self._out  # type: ignore[assignment]
