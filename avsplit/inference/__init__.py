"""Running a trained model on videos.

Read bottom-up: :mod:`.windows` (a video window by window), :mod:`.regions` (sources as picture
regions), :mod:`.engine` (the model pass, for every caller), :mod:`.counting` and
:mod:`.discovery` (finding a video's sources and how many), :mod:`.loader` (decoding in worker
processes, as messages per video), :mod:`.stems` (cross-faded tracks written as they come),
:mod:`.jobs` (videos through the engine, window batches shared between videos), :mod:`.arrays`
(separation in memory: arrays or a decoded video to arrays) and :mod:`.separate` (``separate``
and ``separate --mix`` on files).
"""

from avsplit.inference.arrays import ArrayVideo, Separated, separate_arrays, separate_stream
from avsplit.inference.discovery import (Discovery, discover, discover_regions, discovery_windows, find_regions,
                                         saliency)
from avsplit.inference.engine import Heard, Seen, SeparationEngine, motion_energy
from avsplit.inference.jobs import RegionSpec
from avsplit.inference.regions import Region, box_regions, cells_to_box, grid_regions
from avsplit.inference.separate import SeparateResult, separate_mix, separate_video, separate_videos
from avsplit.inference.stems import ArrayWriter, StemJoiner, StreamingWavWriter
from avsplit.inference.windows import OutputPlan, WindowStream

__all__ = [
    "ArrayVideo",
    "ArrayWriter",
    "Discovery",
    "Heard",
    "OutputPlan",
    "Region",
    "RegionSpec",
    "Seen",
    "SeparateResult",
    "Separated",
    "SeparationEngine",
    "StemJoiner",
    "StreamingWavWriter",
    "WindowStream",
    "box_regions",
    "cells_to_box",
    "discover",
    "discover_regions",
    "discovery_windows",
    "find_regions",
    "grid_regions",
    "motion_energy",
    "saliency",
    "separate_arrays",
    "separate_mix",
    "separate_stream",
    "separate_video",
    "separate_videos",
]
