"""The package version (one place: ``wwtune.__version__``, the report's footer, ``--version``)."""

__version__ = "0.1.0"
