"""avsplit: audio-visual source separation and sound localization learned from unlabeled video.

The command-line tool ``avsplit`` is a thin layer over :mod:`avsplit.api`.
"""

__version__ = "0.1.0"
