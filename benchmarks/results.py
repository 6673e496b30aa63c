"""Where a benchmark's JSON goes, the same for every script: always printed, and written to
``--out`` atomically when given, never over an existing file without ``--force``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from satseg.atomic import atomic_write_text


def output_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--force", action="store_true", help="overwrite --out if it exists")


def fail(message: str) -> None:
    print(f"{Path(sys.argv[0]).name}: error: {message}", file=sys.stderr)
    sys.exit(2)


def check_out(args) -> None:
    """Before any work: a file in an existing folder, not overwritten without --force."""
    if args.out is None:
        return
    if not args.out.parent.is_dir():
        fail(f"{args.out}: folder {args.out.parent} does not exist")
    if args.out.is_dir():
        fail(f"{args.out}: is a folder")
    if args.out.exists() and not args.force:
        fail(f"{args.out}: exists; pass --force to overwrite it")


def emit(args, doc, indent: int = 2) -> None:
    text = json.dumps(doc, indent=indent) + "\n"
    if args.out is not None:
        atomic_write_text(args.out, text)
    print(text, end="")


def run(main) -> None:
    """A benchmark's entry point: a missing model or dataset, or any satseg refusal, is one line
    naming it (exit 2), not a traceback."""
    from satseg.errors import SatsegError

    try:
        code = main()
    except (SatsegError, FileNotFoundError, NotADirectoryError) as e:
        fail(str(e))
    sys.exit(code or 0)
