"""Options and helpers shared by several commands."""

from pathlib import Path

from satseg.atomic import check_writable
from satseg.edge import SHIPPED_MODEL, default_model  # noqa: F401 (the commands' default)
from satseg.errors import SatsegError


def check_outputs(paths, force: bool):
    """Before any work: refuse to overwrite existing results without --force, and make sure
    the folders they go to can be written."""
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        if (path.exists() or path.is_symlink()) and not force:  # a dangling link is there too
            raise SatsegError(f"{path}: exists; pass --force to overwrite it")
        check_writable(path.parent, path)


def require_file(path, what: str = "model"):
    """A missing input is one line at once, before TensorFlow takes seconds to load."""
    if not Path(path).exists():
        raise SatsegError(f"{path}: {what} not found")


def require_tensorflow(command: str):
    """Import TensorFlow with its native start-up logging silenced (it writes to file descriptor
    2 before any Python setting applies), or say in one line which extra to install."""
    import importlib.util
    import os

    def missing(name):
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):
            return True

    if missing("tensorflow") or missing("keras"):
        raise SatsegError(f"`satseg {command}` needs TensorFlow: pip install 'satseg-zoo[train]' "
                          "(this install has only the edge runtime)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import sys

    from satseg.quiet import native_stderr_silenced

    if "tensorflow" in sys.modules:
        return
    with native_stderr_silenced():
        import keras  # noqa: F401
        import tensorflow as tf

        tf.constant(0)  # the first op probes devices, which logs too (cuInit on machines without a GPU)


def on_tensorflow():
    """Run this command under Keras' TensorFlow backend: when ``KERAS_BACKEND`` names another, the
    process replaces itself with the same command under TensorFlow (a ``.keras`` file loads on any
    backend; SavedModel and LiteRT conversion need TensorFlow's)."""
    import os
    import sys

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        return
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "satseg", *sys.argv[1:]], env)
