"""The package version (one source, read by the root package and provenance)."""

__version__ = "0.1.0"
