"""Progress bars that close before an error message, so the error stays the last line, and
that appear only on a terminal (no bar lines in log files)."""

from contextlib import contextmanager


class _Silent:
    """What a disabled bar is: iterates its items, ignores updates (needs no tqdm)."""

    def __init__(self, iterable):
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def update(self, n=1):
        pass


@contextmanager
def progress(iterable=None, enabled: bool = True, **kw):
    """``with progress(items, desc=...) as it: for x in it: ...``, or ``progress(total=N)`` and
    ``it.update(1)``; silent when disabled or when stderr is not a terminal."""
    import sys

    if not enabled or not sys.stderr.isatty():
        yield _Silent(iterable)
        return
    from tqdm import tqdm

    bar = tqdm(iterable, **kw)
    try:
        yield bar
    finally:
        bar.close()
