"""Run a decoding generator in a forked child process, so that a crash of a native decoder (a
segfault in FFmpeg or PyAV on a corrupt file) is one error for that file instead of the end of
the batch.

The child runs the generator and sends each item back through a pipe; an exception it raises
is re-raised in the parent; a child that dies (a signal, or any exit before it is done) raises
:class:`~avsplit.errors.DecoderCrashError` naming the file. The child only decodes: it never
touches the console, torch or the parent's output files, and ends with ``os._exit``.
"""

from __future__ import annotations

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


def _signal_name(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(number).name}"
        except ValueError:
            return f"killed by signal {number}"
    return f"exited with code {os.WEXITSTATUS(status)}"


def isolated_iter(path: str | Path, fn: Callable[..., Iterator], *args, **kwargs) -> Iterator:
    """Yield what ``fn(*args, **kwargs)`` yields, computed in a forked child process.

    Raises what ``fn`` raises, and :class:`DecoderCrashError` for ``path`` when the child dies
    before it is done. Closing the generator early stops the child.
    """
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
            code = _child(Connection(write_fd, readable=False), fn, args, kwargs)
        finally:
            os._exit(code)
    os.close(write_fd)
    conn = Connection(read_fd, writable=False)
    finished = False
    try:
        while True:
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):
                break
            if kind == _ITEM:
                yield payload
            elif kind == _ERROR:
                finished = True
                raise payload
            else:
                finished = True
                return
    finally:
        conn.close()
        if not finished:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status = os.waitpid(pid, 0)
    # the pipe closed without an answer: the child died
    raise DecoderCrashError(f"the decoder crashed on this file ({_signal_name(status)}); it is corrupt",
                            path, "re-encode or re-download the file")
