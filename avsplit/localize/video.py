"""``avsplit localize`` on one video: its maps streamed into the heatmap video and the raw maps."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avsplit import io as media
from avsplit.console import warn_line
from avsplit.errors import AvsplitError, ConfigError
from avsplit.files import ensure_dir
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


def output_paths(video: Path, out: Path) -> tuple[Path, Path]:
    stem = Path(video).stem
    return out / f"{stem}.mp4", out / f"{stem}.npz"


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
    video_out, maps_out = output_paths(path, out)
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}", fix=f"use one of {', '.join(METHODS)}")
    if per_source and method != "model":
        raise ConfigError("--per-source needs --method model (the onsets method does not tell sources apart)")
    for target in (video_out, maps_out) if maps else (video_out,):
        if target.is_dir():
            raise AvsplitError("is a folder where the output file should go", target, "remove or rename it, or use another -o")
    if not overwrite and video_out.exists() and (not maps or maps_out.exists()):
        return LocalizeResult(path, [video_out] + ([maps_out] if maps else []), skipped=True)
    with contextlib.suppress(OSError):
        if video_out.resolve() == path.resolve() or maps_out.resolve() == path.resolve():
            raise AvsplitError("the output would replace the input", path, "choose another output folder")
    renderer = OverlayRenderer(colormap, alpha)  # validates the options before any work
    info = media.probe(path).require_video().require_audio()
    if method == "model":
        if engine is None:
            raise ConfigError("the model method needs weights")
        source = ModelMaps(engine, path, settings or ModelMapSettings(), per_source=per_source, info=info)
    else:
        source = OnsetMaps(path, onset_settings, info=info)
    ensure_dir(out)
    writer_maps = None
    if maps:
        extra = {"method": np.asarray(method)}
        shown = source.regions if per_source else None  # sources found only to build the map are not written
        if shown:
            extra["source_boxes"] = np.asarray([r.box for r in shown], np.float64)
        writer_maps = MapsWriter(maps_out, source.grid, (info.height, info.width),
                                 sources=len(shown or []), extra=extra)
    clock = _MapClock(iter(source), writer_maps.write if writer_maps else None)
    fps = info.fps or 25.0
    frames = media.iter_frames(path)  # every decoded frame, at its own time
    task = None
    if progress is not None:
        task = progress.add_task(f"  {path.name}", total=info.num_frames or None, status="")
    written = 0
    try:
        with media.VideoWriter(video_out, fps=fps, width=info.width, height=info.height, copy_audio_from=path,
                               variable_rate=info.variable_frame_rate) as vw:
            for t, frame in frames:
                values, sources = clock.at(t)
                vw.write(renderer.render(t, frame, values, sources), t)
                written += 1
                if task is not None:
                    progress.advance(task)
            if written == 0:
                raise AvsplitError("video stream has no decodable frames", path, "check that the file plays")
            clock.drain()
        files = [video_out]
        if writer_maps is not None:
            writer_maps.close()
            files.append(maps_out)
    except BaseException:
        if writer_maps is not None:
            writer_maps.abort()
        raise
    finally:
        if task is not None:
            progress.remove_task(task)
    silent = getattr(source, "silent", False)
    if silent:
        warn_line(f"{path}: the audio is silent; the sound map is empty")
    return LocalizeResult(path, files, maps=writer_maps.count if writer_maps else 0, silent=silent)
