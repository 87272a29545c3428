"""Commands write all their outputs or none: a failure leaves no half-written files and no
folder the command created."""

from __future__ import annotations

from pathlib import Path

import pytest

from convscope.cli import main
from convscope.cli.staging import staged_outputs


def _ok(text: str):
    return lambda temp: Path(temp).write_text(text)


def _broken(temp: str) -> None:
    Path(temp).write_text("partial")
    raise ValueError("cannot encode this")


def _write_all(folder: Path, files: dict) -> Path:
    with staged_outputs(folder) as stage:
        for name, write in files.items():
            write(stage.path(name))
    return stage.folder


def test_staged_files_move_into_place_only_when_all_succeed(tmp_path):
    folder = _write_all(tmp_path / "new" / "deeper", {"a.txt": _ok("a"), "b.txt": _ok("b")})
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "b.txt"]
    assert (folder / "b.txt").read_text() == "b"


@pytest.mark.parametrize("existing", [False, True])
def test_staging_leaves_nothing_behind_on_failure(tmp_path, existing):
    folder = tmp_path / "out" / "deeper"
    if existing:
        folder.mkdir(parents=True)
        (folder / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="cannot encode"):
        _write_all(folder, {"a.txt": _ok("a"), "b.txt": _broken, "c.txt": _ok("c")})
    if existing:
        assert [p.name for p in folder.iterdir()] == ["keep.txt"]
        assert (folder / "keep.txt").read_text() == "mine"
    else:  # the parent made for it too
        assert not (tmp_path / "out").exists()


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
