"""genads: end-to-end generative advertising."""

__version__ = "0.1.0"
