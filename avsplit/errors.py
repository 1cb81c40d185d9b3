"""Typed errors. ``str(error)`` is always one line a user can act on: what file, what is wrong, what to do."""

from __future__ import annotations

from pathlib import Path


class AvsplitError(Exception):
    """Base class of every error avsplit reports to a user instead of a traceback."""

    def __init__(self, message: str, path: str | Path | None = None, fix: str | None = None):
        self.path = Path(path) if path is not None else None
        self.reason = message
        self.fix = fix
        super().__init__(self._line())

    def __reduce__(self):
        # keeps the path and the fix when an error crosses a process boundary
        return (type(self), (self.reason, self.path, self.fix))

    def _line(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(f"{self.path}: ")
        parts.append(self.reason.rstrip("."))
        if self.fix:
            fix = self.fix.rstrip(".")
            parts.append(f". {fix[:1].upper()}{fix[1:]}")
        return "".join(parts) + "."


class MediaError(AvsplitError):
    """A media file cannot be used."""


class UnreadableMediaError(MediaError):
    """Not a media file FFmpeg can read, or corrupt/truncated beyond use."""


class EmptyMediaError(MediaError):
    """Zero bytes, or streams with zero duration / no decodable content."""


class DecoderCrashError(UnreadableMediaError):
    """The native decoder crashed (a signal) on the file: it is corrupt in a way FFmpeg does not survive."""


class NoVideoStreamError(MediaError):
    """The file has no video stream (e.g. an audio-only file)."""


class NoAudioStreamError(MediaError):
    """The file has no audio stream."""


class OutputError(AvsplitError):
    """An output cannot be written (permissions, missing disk space, a file where a folder is expected)."""


class CheckpointError(AvsplitError):
    """A checkpoint is missing, corrupt, or does not match the requested configuration."""


class ConfigError(AvsplitError):
    """Invalid options or settings."""


class MissingMediaError(MediaError):
    """The media file does not exist."""


class TruncatedMediaError(UnreadableMediaError):
    """The file was cut short: its index is missing, or its data stops before the length it declares.

    A window that lies fully inside the part that is there still reads; asking for anything
    past the point where the data stops raises this error (nothing is zero-filled).
    """
