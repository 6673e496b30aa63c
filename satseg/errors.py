"""Errors that the CLI turns into one clear line and a non-zero exit."""


class SatsegError(Exception):
    """A problem the user can fix: bad input, a missing file, an existing output."""


class DataError(SatsegError, ValueError):
    """A dataset, image or mask that cannot be used; the message names the file."""


class ModelFileError(SatsegError, FileNotFoundError):
    """A model file or its spec sidecar that is missing, broken or does not fit; names the file."""
