"""Silence what native libraries (TensorFlow, LiteRT) write straight to file descriptor 2:
start-up banners, converter statistics, delegate notices. Standard library only."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True):
    """Send fd 2 to a temporary file for the block; on an error, replay it so nothing that
    explains the error is lost. Python warnings in the block are dropped too."""
    if not enabled or os.environ.get("SATSEG_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
