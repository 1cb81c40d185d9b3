"""`avsplit data`: dataset indexes, the downloader's messages, and end-to-end runs against a
stand-in downloader (a script written here that makes short clips with PyAV), never the network."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avsplit import io as media
from avsplit.cli import app
from avsplit.data.download import MANIFEST_NAME, classify_failure
from avsplit.data.indexes import IndexEntry, dataset_index, load_index, parse_index
from avsplit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# The stand-in for yt-dlp: takes its "-o TEMPLATE ... -- URL" arguments and behaves by the id's
# prefix: gone* removed, net* network error, full* disk full, bad* writes a damaged file, slow* leaves a partial file and
# hangs (unless FAKE_FAST=1); anything else writes a 2-s 160x120 30-fps MKV (MPEG-4 + MP2 sound,
# so the conversion to H.264 + AAC is real). Each call appends the id to $FAKE_LOG.
FAKE_DOWNLOADER = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    import av

    args = sys.argv[1:]
    template = args[args.index("-o") + 1]
    video_id = args[-1].split("v=")[1]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(video_id + "\\n")
    if video_id.startswith("gone"):
        sys.stderr.write(f"ERROR: [youtube] {video_id}: Video unavailable. This video has been removed by the uploader\\n")
        sys.exit(1)
    if video_id.startswith("net"):
        sys.stderr.write(f"WARNING: [youtube] retrying\\nERROR: [youtube] {video_id}: Unable to download webpage: "
                         "<urlopen error [Errno -3] Temporary failure in name resolution> (caused by URLError)\\n")
        sys.exit(1)
    if video_id.startswith("full"):
        sys.stderr.write("ERROR: unable to write data: [Errno 28] No space left on device\\n")
        sys.exit(1)
    path = template.replace("%(ext)s", "mkv")
    if video_id.startswith("bad"):
        open(path, "wb").write(b"<html>not a video</html>")
        sys.exit(0)
    if video_id.startswith("slow") and os.environ.get("FAKE_FAST") != "1":
        with open(path + ".part", "wb") as part:
            part.write(b"\\0" * 1000)
        time.sleep(120)
    container = av.open(path, "w")
    video = container.add_stream("mpeg4", rate=30)
    video.width, video.height, video.pix_fmt = 160, 120, "yuv420p"
    sound = container.add_stream("mp2", rate=48000)
    sound.layout = "stereo"
    for k in range(60):
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[..., 1] = 4 * k
        frame[40:80, 2 * k : 2 * k + 20] = 255
        for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    t = np.arange(2 * 48000) / 48000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for start in range(0, tone.size, 1152):
        chunk = np.ascontiguousarray(np.stack([tone[start : start + 1152]] * 2))
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 48000, start
        for packet in sound.encode(frame):
            container.mux(packet)
    for stream in (video, sound):
        for packet in stream.encode(None):
            container.mux(packet)
    container.close()
    """
)


@pytest.fixture
def fake(tmp_path):
    """(downloader command, log file) of the stand-in downloader."""
    script = tmp_path / "fake_ytdlp.py"
    script.write_text(FAKE_DOWNLOADER)
    return f"{sys.executable} {script}", tmp_path / "calls.log"


def _env(log: Path, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), FAKE_LOG=str(log), OMP_NUM_THREADS="1", COLUMNS="200")
    env.update(extra)
    return env


def _cli(args, env, **kwargs):
    return subprocess.run([sys.executable, "-m", "avsplit", "data", *args], env=env, capture_output=True,
                          text=True, timeout=240, **kwargs)


def _calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def _write_index(path: Path, videos: dict) -> Path:
    path.write_text(json.dumps({"videos": videos}))
    return path


# ------------------------------------------------------------------------------------ indexes


def test_index_layouts_and_segments(tmp_path):
    music = parse_index({"videos": {"acoustic guitar": ["abcdefghijk", {"id": "b-c_d", "segment": [1, 2.5]}]}}, tmp_path)
    assert music == [IndexEntry("acoustic_guitar", "abcdefghijk"), IndexEntry("acoustic_guitar", "b-c_d", (1.0, 2.5))]
    solos = parse_index({"Cello": ["x1"], "Violin": ["x1", "x2"]}, tmp_path)  # the solos package's layout
    assert [e.key for e in solos] == ["Cello/x1", "Violin/x1", "Violin/x2"]
    assert len(parse_index({"Cello": ["x1", "x1"]}, tmp_path)) == 1  # exact repeats are one video


@pytest.mark.parametrize("data, words", [
    ({"Cello": ["../etc"]}, "not a YouTube video id"),
    ({"Cello": [{"id": "x1", "segment": [3, 1]}]}, "start < end"),
    ({"Cello": [{"id": "x1", "segment": "all"}]}, "segment must be"),
    ({"Cello": ["x1", {"id": "x1", "segment": [0, 1]}]}, "twice with different segments"),
    ({"videos": []}, "is not a dataset index"),
    ({"Cello": []}, "lists no videos"),
])
def test_bad_index_is_one_clear_line(tmp_path, data, words):
    path = tmp_path / "index.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=words) as info:
        load_index(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_solos_index_from_the_package_and_without_it(tmp_path, monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'avsplit\[data\]'"):
        dataset_index("solos")
    with pytest.raises(ConfigError, match="MUSIC_solo_videos.json"):
        dataset_index("music")
    monkeypatch.undo()
    # A stand-in of the solos package (its real layout: Solos/json_files/solos_ids.json).
    (tmp_path / "pkgs" / "Solos" / "json_files").mkdir(parents=True)
    (tmp_path / "pkgs" / "Solos" / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (tmp_path / "pkgs" / "Solos" / "json_files" / "solos_ids.json").write_text(json.dumps({"Horn": ["h1", "h2"]}))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    assert [e.key for e in dataset_index("solos")] == ["Horn/h1", "Horn/h2"]


@pytest.mark.parametrize("message, kind", [
    ("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader", "unavailable"),
    ("ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video", "unavailable"),
    ("ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate for some users.", "unavailable"),
    ("ERROR: [youtube] abc: Sign in to confirm you're not a bot. Use --cookies-from-browser", "bot"),
    ("ERROR: [youtube] abc: Unable to download webpage: <urlopen error timed out>", "network"),
    ("ERROR: unable to download video data: HTTP Error 503: Service Unavailable", "network"),
    ("ERROR: unable to write data: [Errno 28] No space left on device", "disk"),
    ("ERROR: something nobody has seen before", "failed"),
])
def test_downloader_messages_are_classified(message, kind):
    failure = classify_failure("[youtube] abc: Downloading webpage\n" + message)
    assert failure.kind == kind
    assert "\n" not in failure.reason and failure.reason


# ---------------------------------------------------------------------------------- end to end


def _wait_for(condition, seconds=90.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_download_kill_and_resume(tmp_path, fake):
    """A run killed mid-way (one download hanging with a partial file) resumes: finished videos
    are kept, the removed video is not asked for again, only the unfinished one is fetched."""
    command, log = fake
    index = _write_index(tmp_path / "MUSIC_solo_videos.json", {
        "cello": ["okcello0001", "gone0000001"],
        "violin": [{"id": "okviolin001", "segment": [0.5, 1.5]}, "slowviolin1"],
    })
    out = tmp_path / "out"
    args = ["music", str(out), "--index", str(index), "--downloader", command, "-j", "2"]
    proc = subprocess.Popen([sys.executable, "-m", "avsplit", "data", *args], env=_env(log), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    manifest = out / MANIFEST_NAME
    partial = out / ".download" / "violin" / "slowviolin1" / "slowviolin1.mkv.part"

    def three_done():
        return manifest.exists() and len(json.loads(manifest.read_text())["videos"]) == 3 and partial.exists()

    try:
        assert _wait_for(three_done), "the first run did not get through the three quick videos"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    states = {k: v["state"] for k, v in json.loads(manifest.read_text())["videos"].items()}
    assert states == {"cello/okcello0001": "downloaded", "cello/gone0000001": "unavailable",
                      "violin/okviolin001": "downloaded"}
    assert not (out / "violin" / "slowviolin1.mp4").exists()
    stale = out / "cello" / ".okcello0001.x1y2.part.mp4"  # what a kill during a write leaves
    stale.write_bytes(b"half a video")
    first_calls = _calls(log)

    result = _cli(args, _env(log, FAKE_FAST="1"))
    assert result.returncode == 0, result.stderr
    assert _calls(log)[len(first_calls):] == ["slowviolin1"]
    assert not stale.exists()
    table = result.stderr
    assert "downloaded" in table and "already there" in table
    assert "gone0000001: Video unavailable. This video has been removed by the uploader" in table
    for name, seconds in [("cello/okcello0001", 2.0), ("violin/okviolin001", 1.0), ("violin/slowviolin1", 2.0)]:
        info = media.probe(out / f"{name}.mp4")
        assert (info.video_codec, info.audio_codec) == ("h264", "aac")
        assert abs(info.fps - 25) < 0.01 and (info.width, info.height) == (160, 120)
        assert abs(info.duration - seconds) < 0.2, (name, info.duration)
    assert not (out / ".download" / "violin" / "slowviolin1").exists()
    states = {k: v["state"] for k, v in json.loads(manifest.read_text())["videos"].items()}
    assert sorted(states.values()) == ["downloaded"] * 3 + ["unavailable"]

    # A third run has nothing to do and asks the downloader for nothing.
    again = _cli(args, _env(log))
    assert again.returncode == 0 and len(_calls(log)) == len(first_calls) + 1


def test_network_error_and_full_disk_are_per_video_lines(tmp_path, fake):
    command, log = fake
    index = _write_index(tmp_path / "index.json", {"flute": ["okflute0001", "badflute001", "netflute001", "fullflute01", "okflute0002"]})
    out = tmp_path / "out"
    result = _cli(["music", str(out), "--index", str(index), "--downloader", command, "-j", "1", "--short-side", "60"],
                  _env(log))
    assert result.returncode == 1
    err = result.stderr
    assert "flute/netflute001: network error" in err and "check the network connection" in err
    assert "flute/fullflute01: disk full" in err
    assert "flute/badflute001: cannot convert the download" in err and "badflute001.mkv" in err
    assert not (out / ".download" / "flute" / "badflute001").exists()  # fetched afresh next time
    assert "1 video(s) not attempted" in err and "Free disk space" in err
    assert _calls(log) == ["okflute0001", "badflute001", "netflute001", "fullflute01"]  # nothing started after the full disk
    info = media.probe(out / "flute" / "okflute0001.mp4")
    assert (info.width, info.height) == (80, 60)
    videos = json.loads((out / MANIFEST_NAME).read_text())["videos"]
    assert videos["flute/netflute001"]["state"] == "failed" and videos["flute/netflute001"]["kind"] == "network"
    assert "flute/okflute0002" not in videos


def test_data_command_options_and_errors(tmp_path, fake):
    command, log = fake
    index = _write_index(tmp_path / "index.json", {"tuba": ["gonetuba001", "gonetuba002"], "horn": ["gonehorn001"]})
    runner = CliRunner()
    env = {"FAKE_LOG": str(log)}
    result = runner.invoke(app, ["data", "music", str(tmp_path / "out"), "--index", str(index), "--downloader", command,
                                 "--categories", "tuba", "--limit", "1"], env=env)
    assert result.exit_code == 0, result.output
    assert _calls(log) == ["gonetuba001"]
    result = runner.invoke(app, ["data", "music", str(tmp_path / "out"), "--index", str(index), "--downloader", command,
                                 "--categories", "oboe"])
    assert result.exit_code == 1 and "no category oboe" in result.output
    result = runner.invoke(app, ["data", "music", str(tmp_path / "out2"), "--downloader", command])
    assert result.exit_code == 1 and "MUSIC_solo_videos.json" in result.output
    result = runner.invoke(app, ["data", "music", str(tmp_path / "out2"), "--index", str(index),
                                 "--downloader", "no-such-downloader-xyz"])
    assert result.exit_code == 1 and "avsplit[data]" in result.output
    result = runner.invoke(app, ["data", "url", str(tmp_path / "out2")])
    assert result.exit_code == 1 and "unknown dataset" in result.output
