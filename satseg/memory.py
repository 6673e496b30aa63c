"""Giving freed memory back to the operating system.

glibc's allocator serves arrays of up to 32 MB from its heap once a large one has been freed
(its mmap threshold rises), and keeps the heap's free pages when they are not at its top. A
process that traces a region of millions of vertices then holds hundreds of megabytes it no
longer uses, and the next large step (writing the polygons) adds to that instead of reusing it.
``malloc_trim`` hands the free pages back; elsewhere (musl, macOS, Windows) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _libc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_freed_memory() -> None:
    """Return the allocator's free pages to the system (glibc ``malloc_trim(0)``), so that the
    resident size, and so the peak a machine sees, follows what is really in use."""
    trim = _libc_trim()
    if trim is not None:
        trim(0)
