"""The README's promises: quick-start commands match CI, its examples run, the demo works."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from convscope.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [b.strip() for b in re.findall(r"```bash\n(.*?)```", quick_start, flags=re.S)]
    assert commands == [
        "pip install -e . && convscope demo",
        'pip install -e ".[test]" && python -m pytest',
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_test_extra_pins_the_reference_torch():
    text = (ROOT / "pyproject.toml").read_text()
    test_extra = re.search(r"\ntest = \[(.*?)\n\]", text, flags=re.S).group(1)
    assert '"torch==2.13.0"' in test_extra
    core = re.search(r"\ndependencies = \[(.*?)\n\]", text, flags=re.S).group(1)
    assert "torch" not in core  # the reference is never a runtime dependency


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write files
    for block in _code_blocks("python"):
        exec(compile(block, "README.md", "exec"), {})


def test_demo_prints_the_worked_examples(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    for expected in (
        "[[10, 12, 12],",
        "[[10, 12],",
        "[ 7, 18, 16, 16,  8],",
        "but got input of size: [5, 5]",
        "(4, 3, 2)",
        "(64, 6, 30, 30)",
        "(1, 2, 257, 188)",
        "(1, 8, 8, 8)",
    ):
        assert expected in out
    checks = re.findall(r"= ([+-]\d\.\d+); layer gives ([+-]\d\.\d+)", out)
    assert len(checks) == 2 and all(a == b for a, b in checks)


def test_console_script_runs_demo():
    done = subprocess.run(
        [sys.executable, "-m", "convscope.cli", "demo", "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "seed 3" in done.stdout


@pytest.mark.parametrize("argv", [["demo", "--seed", "x"], ["no-such-command"]])
def test_bad_command_line_exits_2_with_one_line(argv):
    done = subprocess.run(
        [sys.executable, "-m", "convscope.cli", *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_version_and_python_dash_m():
    import convscope

    # the installed script beside this interpreter (found without an activated venv too)
    beside = Path(sys.executable).with_name("convscope")
    script = str(beside) if beside.exists() else "convscope"
    for command in ([script], [sys.executable, "-m", "convscope"]):
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, check=True)
        assert done.stdout.strip() == f"convscope {convscope.__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        ["explain", "--input-size", "100000,100000"],
        ["explain", "--input-size", "5,5", "--kernel-size", "100000"],
        ["explain", "--out-channels", "10000000"],
        ["explain", "--kernel-size", "4000", "--input-size", "4000,4000", "--out-channels", "4000"],
        ["animate", "--fps", "1e-300"],
        ["animate", "--input-size", "100000,100000"],
    ],
)
def test_oversized_requests_are_one_line_errors(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"convscope {argv[0]}: error:")
    assert list(tmp_path.iterdir()) == []  # nothing written
