"""Training data: the videos of a dataset (listed by :mod:`avsplit.scan`) decoded once into a cache
(:mod:`.cache`; one entry on disk: :mod:`.entry`, written by :mod:`.decode`)."""

from avsplit.data.cache import CacheReport, PreprocessCache
from avsplit.data.entry import CACHE_FORMAT, CacheExtra, CacheMissError, CachedVideo, EntryWriter

__all__ = [
    "CACHE_FORMAT",
    "CacheExtra",
    "CacheMissError",
    "CacheReport",
    "CachedVideo",
    "EntryWriter",
    "PreprocessCache",
]
