"""Where the sound comes from: sound maps over time, heatmap videos, raw maps (``avsplit localize``).

Two ways to get maps, both streamed as ``(time, map)`` with ``map`` float32 ``(h, w)`` in [0, 1]:

- ``model`` (:class:`~avsplit.localize.model_maps.ModelMaps`): the pixel-wise synthesizer gives one
  spectrogram mask per pixel of the appearance net's feature grid; applied to the mixture, each
  pixel claims a share of the sound energy at every STFT frame. Windows of the model's clip length slide over the video with a
  hop of at most 1 s; inside a window the per-frame shares are smoothed over time (Gaussian) and
  gated by loudness (silence gives an empty map); overlapping windows are averaged (weighted
  towards each window's middle, where the network sees most context) into maps at ``map_rate``.
  Values below ``floor`` x the map's peak are set to zero, so a map shows objects, not haze.
  With ``per_source`` the sources found as ``separate`` finds them each get their own map: the
  energy a pixel claims inside the part of the spectrogram that source's mask claims.
- ``onsets`` (:mod:`avsplit.localize.onsets`): no weights; regions that move in time with the sound.

:class:`OverlayWriter` blends maps (bilinearly upsampled to the frame size, linearly interpolated
in time) over the original frames, at the original size and frame rate, with the original audio
copied in, written atomically. :class:`MapsWriter` streams the raw maps into ``OUT/<stem>.npz``
(``maps`` float32 ``[T, h, w]`` in [0, 1], ``times`` ``[T]`` (seconds, centre of each map),
``frame_size`` ``[H, W]``; with sources also ``source_maps`` ``[K, T, h, w]`` and
``source_boxes`` ``[K, 4]``). Memory is bounded by one window and one frame, whatever the length.

Modules: :mod:`.maps` (map streams), :mod:`.model_maps`, :mod:`.onsets`, :mod:`.colours`,
:mod:`.writers` and :mod:`.video` (one video); map post-processing is in :mod:`avsplit.dsp.maps`.
"""

from avsplit.localize.colours import COLORMAPS, SOURCE_COLOURS, apply_colormap, colormap_lut
from avsplit.localize.maps import METHODS, MapFrame, OnsetMaps, compute_maps
from avsplit.localize.model_maps import ModelMapSettings, ModelMaps
from avsplit.localize.video import LocalizeResult, check_options, localize_video
from avsplit.localize.writers import MapsWriter, OverlayRenderer

__all__ = ["COLORMAPS", "METHODS", "SOURCE_COLOURS", "LocalizeResult", "MapFrame", "MapsWriter", "ModelMapSettings",
           "ModelMaps", "OnsetMaps", "OverlayRenderer", "apply_colormap", "colormap_lut", "check_options",
           "compute_maps", "localize_video"]
