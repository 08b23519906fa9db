"""gankit's own errors: faults the user can fix (a bad argument, value, file or folder).

`GankitError` is their one base class. The command line prints their message on one line and
exits with 2; any other exception is a bug in gankit and exits with 1 and its traceback. The
subclasses are also `ValueError` or `FileNotFoundError`, so that library users who catch those
(as the style of the ecosystem has them do) keep working.
"""

from __future__ import annotations


class GankitError(Exception):
    """A fault the user can fix; the message names the thing and what is wrong with it."""


class UsageError(GankitError, ValueError):
    """A bad argument or combination of arguments (CLI flags or API parameters)."""


class ConfigError(GankitError, ValueError):
    """A configuration key with a bad value, type or name."""


class DataError(GankitError, ValueError):
    """A dataset that cannot be loaded; the message names the file and the fault."""


class RunFolderError(GankitError, ValueError):
    """A run folder that cannot be used as asked (not a run, busy, nothing to resume)."""


class CheckpointError(GankitError, ValueError):
    """A checkpoint file that is missing, unreadable or of an unknown format."""


class MissingFileError(GankitError, FileNotFoundError):
    """A file the user named (or a run needs) does not exist."""
