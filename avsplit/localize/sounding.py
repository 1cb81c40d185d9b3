"""Where in a video the sound comes from, as one box: what ``--zoom`` looks closer at when a whole
video is one source (``separate --mix``, the ``mix`` protocol of ``evaluate``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avsplit import io as media
from avsplit.inference.regions import cells_to_box
from avsplit.localize.onsets import OnsetSettings, onset_maps

#: Cells of the summed onset map at least this share of its peak belong to the sounding blob.
BLOB_SHARE = 0.3


def sounding_box(path: str | Path, settings: OnsetSettings = OnsetSettings(),
                 info: media.MediaInfo | None = None) -> list[float] | None:
    """The box ``[x0, y0, x1, y1]`` (video pixels) of the blob around the peak of the video's onset maps
    (:func:`avsplit.localize.onsets.onset_maps`) summed over its whole length: where motion keeps
    coinciding with sound onsets. ``None`` when nothing ever does (no box to look closer at)."""
    from scipy import ndimage

    info = info or media.probe(path)
    total = None
    for _, m in onset_maps(path, settings, info=info):
        total = m.astype(np.float64) if total is None else total + m
    if total is None or not float(total.max()) > 0.0:
        return None
    blobs, _ = ndimage.label(total >= BLOB_SHARE * float(total.max()))
    peak_blob = blobs == blobs[np.unravel_index(int(total.argmax()), total.shape)]
    rows, cols = total.shape
    return cells_to_box(peak_blob, (cols, rows), (info.width, info.height))
