"""The package version, in a module of its own so that any module can import it without
importing the package's public API (and so the rest of gankit) first."""

__version__ = "0.3.0"
