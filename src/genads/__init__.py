"""genads: end-to-end generative advertising.

``genads.load(run)`` opens a trained run as a recommender in your own ids (see :mod:`genads.runs`).
"""

__version__ = "0.1.0"


def load(run):  # imported lazily: `import genads` stays light (no torch) for the CLI's start-up
    """A run folder of ``genads train`` (either family) as a :class:`genads.runs.Run`."""
    from genads.runs import load as _load

    return _load(run)
