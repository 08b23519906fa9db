"""The usage error of the command line (exit code 2)."""


class UsageError(ValueError):
    """A bad combination of command-line arguments."""
