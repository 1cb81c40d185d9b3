"""Run a decoding generator in a forked child process, so that a crash of a native decoder (a
segfault in FFmpeg or PyAV on a corrupt file) is one error for that file instead of the end of
the batch.

The child runs the generator and sends each item back through a pipe; an exception it raises
is re-raised in the parent; a child that dies (a signal, or any exit before it is done) raises
:class:`~avsplit.errors.DecoderCrashError` naming the file. The child only decodes: it never
touches the console, torch or the parent's output files, and ends with ``os._exit``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pickle
import signal
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable, Iterator

from avsplit.errors import DecoderCrashError


_ITEM, _ERROR, _END = 0, 1, 2


def _child(conn: Connection, fn: Callable[..., Iterator], args: tuple, kwargs: dict) -> int:
    try:
        for item in fn(*args, **kwargs):
            conn.send((_ITEM, item))
        conn.send((_END, None))
        return 0
    except BaseException as exc:  # noqa: BLE001 - every outcome is sent back to the parent
        try:
            conn.send((_ERROR, exc))
        except (pickle.PicklingError, TypeError, AttributeError, OSError):
            try:
                conn.send((_ERROR, RuntimeError(f"{type(exc).__name__}: {exc}")))
            except OSError:
                return 1
        return 0


def _die_with_parent() -> None:
    """Linux: the child is killed when its parent dies (no orphan decoder left behind a killed run)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _signal_name(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exited with code {os.WEXITSTATUS(status)}"


#: A child that sends nothing for this long is stuck (a fork can inherit a lock another thread held):
#: it is killed and started again, at most :data:`RETRIES` times, skipping the items already received.
STALL_SECONDS = 90.0
RETRIES = 2


def isolated_iter(path: str | Path, fn: Callable[..., Iterator], *args, **kwargs) -> Iterator:
    """Yield what ``fn(*args, **kwargs)`` yields, computed in a forked child process.

    Raises what ``fn`` raises, and :class:`DecoderCrashError` for ``path`` when the child dies
    before it is done (or stays stuck after :data:`RETRIES` fresh starts). Closing the generator
    early stops the child. ``fn`` must yield the same items when run again (decoding does).
    """
    delivered = 0
    for attempt in range(RETRIES + 1):
        stalled = yield from _one_child(path, fn, args, kwargs, skip=delivered)
        if stalled is None:
            return
        delivered = stalled
    raise DecoderCrashError(f"the decoder stopped responding on this file ({STALL_SECONDS:.0f} s without output)",
                            path, "re-encode or re-download the file")


def _one_child(path, fn, args, kwargs, skip: int) -> Iterator:
    """Run ``fn`` in one child, yielding its items after the first ``skip``; returns None when done, or the
    number of items received so far when the child stalled."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read_fd)
            faulthandler.disable()  # a crash is reported by the parent, in one line
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _die_with_parent()
            code = _child(Connection(write_fd, readable=False), fn, args, kwargs)
        finally:
            os._exit(code)
    os.close(write_fd)
    conn = Connection(read_fd, writable=False)
    finished = False
    received = 0
    stalled = False
    try:
        while True:
            try:
                if not conn.poll(STALL_SECONDS):
                    stalled = True
                    break
                kind, payload = conn.recv()
            except (EOFError, OSError):
                break
            if kind == _ITEM:
                received += 1
                if received > skip:
                    yield payload
            elif kind == _ERROR:
                finished = True
                raise payload
            else:
                finished = True
                return None
    finally:
        conn.close()
        if not finished:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
    if stalled:
        return max(received, skip)
    # the pipe closed without an answer: the child died
    raise DecoderCrashError(f"the decoder crashed on this file ({_signal_name(status)}); it is corrupt",
                            path, "re-encode or re-download the file")


# ------------------------------------------------------------------------- crash isolation

_isolation = {"on": False}


@contextlib.contextmanager
def isolated_decoding() -> Iterator[None]:
    """Within this block, :func:`probe`, :func:`iter_audio` (and :func:`read_audio`),
    :func:`iter_frames` and :func:`read_frames` decode in a forked child process
    (:func:`isolated_iter`): a native decoder that crashes on a corrupt file raises
    :class:`~avsplit.errors.DecoderCrashError` for that file instead of killing the process."""
    before = _isolation["on"]
    _isolation["on"] = True
    try:
        yield
    finally:
        _isolation["on"] = before


def _in_child(fn, *args, **kwargs) -> Iterator:
    _isolation["on"] = False  # the child decodes in-process
    result = fn(*args, **kwargs)
    if isinstance(result, Iterator):
        yield from result
    else:
        yield result


def isolation_on() -> bool:
    """Whether decoding runs in a forked child here (inside :func:`isolated_decoding`)."""
    return _isolation["on"]


def guarded(path, fn, *args, **kwargs) -> Iterator:
    """The items of ``fn(*args, **kwargs)`` (an iterator, or one value) computed in a forked child."""
    return isolated_iter(path, _in_child, fn, *args, **kwargs)
