"""``avsplit localize`` on one video: its maps streamed into the heatmap video and the raw maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsplit import io as media
from avsplit.console import warn_line
from avsplit.errors import AvsplitError, ConfigError
from avsplit.files import ensure_dir
from avsplit.layout import LocalizeOutputs, plan_localize
from avsplit.localize.colours import COLORMAPS
from avsplit.localize.maps import METHODS, OnsetMaps
from avsplit.localize.model_maps import ModelMapSettings, ModelMaps
from avsplit.localize.writers import MapsWriter, OverlayRenderer, _MapClock


# ------------------------------------------------------------------------------ one video


@dataclass
class LocalizeResult:
    video: Path
    files: list[Path] = field(default_factory=list)
    skipped: bool = False
    maps: int = 0
    silent: bool = False


def check_options(method: str, per_source: bool = False, colormap: str = "inferno", alpha: float = 0.5,
                  map_rate: float | None = None) -> OverlayRenderer:
    """Refuse options that are unknown or do not go together (one-line :class:`ConfigError`); returns the
    overlay renderer they ask for."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}", fix=f"use one of {', '.join(METHODS)}")
    if colormap not in COLORMAPS:
        raise ConfigError(f"unknown colour map {colormap!r}", fix=f"use one of {', '.join(COLORMAPS)}")
    if per_source and method != "model":
        raise ConfigError("--per-source needs --method model (the onsets method does not tell sources apart)")
    if map_rate is not None and not map_rate > 0:
        raise ConfigError("--map-rate must be positive")
    return OverlayRenderer(colormap, alpha)


def _map_source(path: Path, info: media.MediaInfo, method: str, engine, per_source: bool,
                settings: ModelMapSettings | None, onset_settings) -> ModelMaps | OnsetMaps:
    """The stream of :class:`~avsplit.localize.maps.MapFrame` s of ``method`` over one video."""
    if method == "model":
        if engine is None:
            raise ConfigError("the model method needs weights")
        return ModelMaps(engine, path, settings or ModelMapSettings(), per_source=per_source, info=info)
    return OnsetMaps(path, onset_settings, info=info)


def _maps_writer(outputs: LocalizeOutputs, source, info: media.MediaInfo, method: str,
                 per_source: bool) -> MapsWriter | None:
    """The writer of the raw maps (``OUT/<stem>.npz``) when they are asked for."""
    if not outputs.with_maps:
        return None
    extra = {"method": np.asarray(method)}
    shown = source.regions if per_source else None  # sources found only to build the map are not written
    if shown:
        extra["source_boxes"] = np.asarray([r.box for r in shown], np.float64)
    return MapsWriter(outputs.maps, source.grid, (info.height, info.width), sources=len(shown or []), extra=extra)


def _write_overlay(path: Path, video_out: Path, info: media.MediaInfo, clock: _MapClock, renderer: OverlayRenderer,
                   progress=None) -> None:
    """Every decoded frame of ``path``, at its own time, with the map then drawn over it, into ``video_out``
    (original size, frame rate and sound)."""
    task = None
    if progress is not None:
        task = progress.add_task(f"  {path.name}", total=info.num_frames or None, status="")
    written = 0
    try:
        with media.VideoWriter(video_out, fps=info.fps or 25.0, width=info.width, height=info.height,
                               copy_audio_from=path, variable_rate=info.variable_frame_rate) as vw:
            for t, frame in media.iter_frames(path):
                values, sources = clock.at(t)
                vw.write(renderer.render(t, frame, values, sources), t)
                written += 1
                if task is not None:
                    progress.advance(task)
            if written == 0:
                raise AvsplitError("video stream has no decodable frames", path, "check that the file plays")
            clock.drain()
    finally:
        if task is not None:
            progress.remove_task(task)


def localize_video(
    path: str | Path,
    out: str | Path,
    *,
    method: str = "model",
    engine=None,
    maps: bool = False,
    per_source: bool = False,
    alpha: float = 0.5,
    colormap: str = "inferno",
    settings: ModelMapSettings | None = None,
    onset_settings=None,
    overwrite: bool = False,
    progress=None,
) -> LocalizeResult:
    """Write ``OUT/<stem>.mp4`` (and with ``maps`` ``OUT/<stem>.npz``) for one video.

    ``engine`` (a :class:`~avsplit.inference.engine.SeparationEngine`) is needed for ``method="model"``.
    Existing outputs are kept (``skipped``) unless ``overwrite``. ``progress``: a rich Progress to
    show the frames written.
    """
    path = Path(path)
    out = Path(out)
    renderer = check_options(method, per_source, colormap, alpha)  # before any work
    outputs, finished = plan_localize(path, out, maps, overwrite)
    if finished:
        return LocalizeResult(path, outputs.files, skipped=True)
    info = media.probe(path).require_video().require_audio()
    source = _map_source(path, info, method, engine, per_source, settings, onset_settings)
    ensure_dir(out)
    writer_maps = _maps_writer(outputs, source, info, method, per_source)
    clock = _MapClock(iter(source), writer_maps.write if writer_maps else None)
    try:
        _write_overlay(path, outputs.video, info, clock, renderer, progress)
        if writer_maps is not None:
            writer_maps.close()
    except BaseException:
        if writer_maps is not None:
            writer_maps.abort()
        raise
    silent = getattr(source, "silent", False)
    if silent:
        warn_line(f"{path}: the audio is silent; the sound map is empty")
    return LocalizeResult(path, outputs.files, maps=writer_maps.count if writer_maps else 0, silent=silent)
