"""Commands write all their outputs or none: a failure leaves no half-written files and no
folder the command created."""

from __future__ import annotations

from pathlib import Path

import pytest

from convscope.cli import main
from convscope.cli.common import write_all


def _ok(text: str):
    return lambda temp: Path(temp).write_text(text)


def _broken(temp: str) -> None:
    Path(temp).write_text("partial")
    raise ValueError("cannot encode this")


def test_write_all_moves_files_into_place_only_when_all_succeed(tmp_path):
    folder = write_all(tmp_path / "new", {"a.txt": _ok("a"), "b.txt": _ok("b")})
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "b.txt"]
    assert (folder / "b.txt").read_text() == "b"


@pytest.mark.parametrize("existing", [False, True])
def test_write_all_leaves_nothing_behind_on_failure(tmp_path, existing):
    folder = tmp_path / "out"
    if existing:
        folder.mkdir()
        (folder / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="cannot encode"):
        write_all(folder, {"a.txt": _ok("a"), "b.txt": _broken, "c.txt": _ok("c")})
    if existing:
        assert [p.name for p in folder.iterdir()] == ["keep.txt"]
        assert (folder / "keep.txt").read_text() == "mine"
    else:
        assert not folder.exists()


def test_audio_command_failing_mid_way_writes_nothing(tmp_path, monkeypatch, capsys):
    from convscope.apps import audio

    calls = []

    def failing_save_wav(path, samples, sr):
        calls.append(path)
        if len(calls) == 2:
            raise ValueError("cannot write this waveform")
        Path(path).write_bytes(b"RIFF")

    monkeypatch.setattr(audio, "save_wav", failing_save_wav)
    out = tmp_path / "audio-out"
    assert main(["audio", "--conv1d", "--output", str(out)]) == 2
    assert "cannot write this waveform" in capsys.readouterr().err
    assert not out.exists() and len(calls) == 2
