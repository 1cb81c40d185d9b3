"""Training data: finding videos (:mod:`.scan`) and decoding them once into a cache (:mod:`.cache`;
one entry on disk: :mod:`.entry`, written by :mod:`.decode`)."""

from avsplit.data.cache import CacheReport, PreprocessCache
from avsplit.data.entry import CACHE_FORMAT, CacheExtra, CacheMissError, CachedVideo, EntryWriter
from avsplit.data.scan import SOP_FPS, DatasetError, VideoItem, load_dataset, read_sop_csv, scan_videos

__all__ = [
    "CACHE_FORMAT",
    "CacheExtra",
    "CacheMissError",
    "CacheReport",
    "CachedVideo",
    "DatasetError",
    "EntryWriter",
    "PreprocessCache",
    "SOP_FPS",
    "VideoItem",
    "load_dataset",
    "read_sop_csv",
    "scan_videos",
]
