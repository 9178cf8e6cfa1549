"""The package version, in a module of its own so any layer can import it without
importing the package (pfflake/__init__ imports the reader modules)."""

__version__ = "0.1.0"
