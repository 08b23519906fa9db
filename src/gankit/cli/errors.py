"""The command line's usage error (exit code 2): gankit's own, re-exported for the handlers."""

from gankit.errors import UsageError

__all__ = ["UsageError"]
