"""Progress bars that close before an error message, so the error stays the last line."""

from contextlib import contextmanager


@contextmanager
def progress(iterable, enabled: bool = True, **kw):
    """``with progress(items, desc=...) as it: for x in it: ...``; a plain iterable when disabled."""
    if not enabled:
        yield iterable
        return
    import sys

    from tqdm import tqdm

    kw.setdefault("disable", not sys.stderr.isatty())  # no bar lines in log files
    bar = tqdm(iterable, **kw)
    try:
        yield bar
    finally:
        bar.close()
