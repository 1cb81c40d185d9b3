"""Media I/O on PyAV (FFmpeg in-process): probing, decoding, encoding.

Everything that touches a media container lives here. Decoding functions stream: nothing holds a
whole video in memory, and reading a late window seeks instead of decoding from the start.
Every failure is raised as a :class:`avsplit.errors.MediaError` subclass whose message is one
line naming the file and the fix.

Time convention: every time given to or returned by this module is in seconds from the start of
the file (the earliest timestamp of any stream, FFmpeg's ``start_time``), for audio and video
alike, so audio and video stay in sync even for containers whose timestamps start late
(MPEG-TS starts at 1.4 s) or whose streams start at different times.

Truncated files: a file whose index promises more than its data holds (an MP4 written with its
index at the front and cut short, an MKV cut short, ...) is never used as if complete and never
padded with zeros. Reading a range that lies inside the part that is there works; asking for
anything past the point where the data stops raises :class:`TruncatedMediaError`.
:func:`probe` reports such files with ``truncated=True``.

The package is read bottom-up: :mod:`~avsplit.io.container` (opening, shared constants),
:mod:`~avsplit.io.isolation` (decoding in a forked child), :mod:`~avsplit.io.probe`,
:mod:`~avsplit.io.demux` (the stream reader), then :mod:`~avsplit.io.audio`,
:mod:`~avsplit.io.video` and :mod:`~avsplit.io.writers`.
"""

from avsplit.io.audio import iter_audio, read_audio, read_audio_file
from avsplit.io.isolation import isolated_decoding
from avsplit.io.probe import MediaInfo, probe
from avsplit.io.video import iter_frames, read_frames, resize_frames, scaled_size
from avsplit.io.writers import VideoWriter, write_audio

__all__ = [
    "MediaInfo",
    "probe",
    "read_audio",
    "iter_audio",
    "iter_frames",
    "read_frames",
    "resize_frames",
    "scaled_size",
    "write_audio",
    "read_audio_file",
    "VideoWriter",
    "isolated_decoding",
]
