"""A HiGHS instance that writes nothing to stdout.

HiGHS prints its banner ("Running HiGHS 1.16.0 ...") from the C++ constructor of the first
``Highs`` object in a process, to file descriptor 1, before any option can be set: so
``output_flag=False`` alone does not silence it, and a ``--json`` benchmark's stdout would no
longer parse. :func:`quiet_highs` builds every instance with ``output_flag`` and
``log_to_console`` off, and the first one of the process with file descriptor 1 pointed at
file descriptor 2 for the duration of the constructor, so the banner goes to stderr (once; the
constructor prints it only the first time). cvxpy's HiGHS interface builds its own instances
later, after the banner has been printed, and its output is governed by ``verbose`` (off).
"""

from __future__ import annotations

import os
import sys
import threading

import highspy

_lock = threading.Lock()
_banner_done = False


def _construct_banner_to_stderr() -> highspy.Highs:
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        return highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def quiet_highs() -> highspy.Highs:
    """A new ``highspy.Highs`` with console output off (its banner, once per process, to stderr)."""
    global _banner_done
    with _lock:
        if _banner_done:
            h = highspy.Highs()
        else:
            try:
                h = _construct_banner_to_stderr()
            except (
                OSError
            ):  # no usable file descriptors 1/2 (a daemonised process): construct as is
                h = highspy.Highs()
            _banner_done = True
    h.setOptionValue("output_flag", False)
    h.setOptionValue("log_to_console", False)
    return h
