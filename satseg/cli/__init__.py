"""The ``satseg`` command line: a thin click layer over the library, one module per command."""

from __future__ import annotations

import os
import sys

import click

from satseg import __version__
from satseg.errors import SatsegError


class Group(click.Group):
    """Lists commands in the order they were added (the order of a user's workflow)."""

    def list_commands(self, ctx):
        return list(self.commands)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="satseg")
def cli():
    """satseg: semantic segmentation of satellite imagery, from a U-Net teacher to a tiny
    distilled student that runs on the edge.

    \b
    Typical workflow:
      satseg models                               the shipped models; the default is marked
      satseg predict IMAGES... --out PRED         segment with the default model (or --model NAME)
      satseg data inspect DATA                    layout, pairs, classes, pixel shares
      satseg train --data DATA --out runs/t       the pretrained teacher (lite0_unet, the default)
      satseg train --model lite0_edge --teacher runs/t/model.keras --data DATA --out runs/s
      satseg evaluate --model runs/s/model.keras --data DATA
      satseg export --model runs/s/model.keras --out DIR     LiteRT files + size report
    `satseg fit DATA --out DIR` runs the whole chain on your data; `satseg demo` on built-in synthetic data.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _register():
    from satseg.cli import bench, data, demo, evaluate, export, fit, models, predict, train

    for mod in (demo, fit, data, models, train, evaluate, export, predict, bench):
        cli.add_command(mod.command)


_register()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every ``finally`` runs (temporaries removed,
    locks released) before the process ends."""


_SIGNALLED: list[int] = []


def _terminate(signum, frame):
    _SIGNALLED.append(signum)
    raise Terminated()


def main(argv=None):
    """Entry point: user errors become one line on stderr and exit status 2."""
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(args=argv, prog_name="satseg", standalone_mode=False)
    except click.exceptions.Abort:  # click turns Ctrl-C (and SIGTERM, raised as one) into Abort
        click.echo("terminated" if _SIGNALLED else "aborted", err=True)
        sys.exit(143 if _SIGNALLED else 130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except SatsegError as e:
        click.echo(f"satseg: error: {e}", err=True)
        sys.exit(2)
    except Terminated:
        click.echo("terminated", err=True)
        sys.exit(143)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:
        full = storage_error(e)
        if full is None:
            raise
        click.echo(f"satseg: error: {full}", err=True)
        sys.exit(2)
    sys.exit(0)


STORAGE_ERRNOS = {28: "no space left on the device", 30: "the file system is read-only", 122: "disk quota exceeded"}
STORAGE_TEXTS = ("No space left on device", "Read-only file system", "Disk quota exceeded")


def storage_error(e: BaseException) -> str | None:
    """One line for a write that the storage refused (disk full, read-only, over quota), however
    deep a library wrapped it (h5py, Keras, TensorFlow); None for any other error."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
            where = e.filename or "output"
            return f"{where}: cannot write ({STORAGE_ERRNOS[e.errno]}); free space or choose another location, then rerun"
        text = next((t for t in STORAGE_TEXTS if t in str(e)), None)
        if text:
            return f"cannot write ({text.lower()}); free space or choose another location, then rerun"
        e = e.__cause__ or e.__context__
    return None
