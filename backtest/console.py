"""The backtester's console: stdout kept for ``--json``, logs quieted to stderr.

A module of its own so the runner and the CLI can both use it without importing each other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 at stderr for the block: HiGHS prints its banner from C on the first
    solver it creates, and ``--json`` promises nothing but the summary on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def quiet_logs() -> None:
    """Logs to stderr, warnings and up: a replay's thousands of per-move lines are not news."""
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
    if root.level < logging.WARNING:
        root.setLevel(logging.WARNING)
