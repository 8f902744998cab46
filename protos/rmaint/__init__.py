"""rmaint's wire contract (``rmaint.v1``) and the helpers both sides share with it.

``__version__`` is the distribution's version: pyproject.toml reads it from here, so a
daemon can report it without loading package metadata.
"""

__version__ = "0.1.0"
