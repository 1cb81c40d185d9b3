"""Running a trained model on videos.

Read bottom-up: :mod:`.windows` (a video window by window), :mod:`.regions` (sources as picture
regions), :mod:`.engine` (the model pass over batches of windows), :mod:`.counting` and
:mod:`.discovery` (finding a video's sources and how many), :mod:`.loader` (decoding in worker
processes, as messages per video), :mod:`.stems` (cross-faded tracks written as they come) and
:mod:`.separate` (``separate`` and ``separate --mix`` on files).
"""

from avsplit.inference.discovery import discover_regions, discovery_windows, find_regions, saliency
from avsplit.inference.engine import SeparationEngine, region_vectors
from avsplit.inference.regions import Region, box_regions, cells_to_box, grid_regions
from avsplit.inference.separate import RegionSpec, SeparateResult, separate_mix, separate_video, separate_videos
from avsplit.inference.stems import StemJoiner, StreamingWavWriter
from avsplit.inference.windows import WindowStream

__all__ = [
    "Region",
    "RegionSpec",
    "SeparateResult",
    "SeparationEngine",
    "StemJoiner",
    "StreamingWavWriter",
    "WindowStream",
    "box_regions",
    "cells_to_box",
    "discover_regions",
    "discovery_windows",
    "find_regions",
    "grid_regions",
    "region_vectors",
    "saliency",
    "separate_mix",
    "separate_video",
    "separate_videos",
]
