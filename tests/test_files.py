"""Output files: refused when they are not regular writable files, all-or-nothing, no leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import symrnn as sr
from symrnn.errors import SymrnnError
from symrnn.files import check_output, write_all, write_atomic

EQ = "h(t) = tanh(w*h(t-1) + x(t))"


def _cli(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "symrnn", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _refused(done: subprocess.CompletedProcess, *words: str) -> None:
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("symrnn: error: ")
    for word in words:
        assert word in done.stderr, done.stderr


def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "symlink":
        target = tmp_path / "elsewhere.txt"
        target.write_text("keep")
        (tmp_path / "out.tex").symlink_to(target)
    elif kind == "fifo":
        os.mkfifo(tmp_path / "out.tex")
    elif kind == "read-only":
        (tmp_path / "out.tex").write_text("keep")
        (tmp_path / "out.tex").chmod(0o444)
    return tmp_path / "out.tex"


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("symlink", "is a symbolic link"),
        ("fifo", "is not a regular file"),
        ("read-only", "is read-only"),
    ],
)
def test_special_outputs_are_refused_by_name(tmp_path: Path, kind: str, words: str) -> None:
    path = _special(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = _cli(tmp_path, "latex", EQ, "--steps", "2", "-o", "out.tex")
    _refused(done, "'out.tex'", words)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    if kind == "symlink":
        assert path.is_symlink() and (tmp_path / "elsewhere.txt").read_text() == "keep"
    with pytest.raises(SymrnnError, match=words):
        write_atomic(path, "x")


def test_device_output_is_refused(tmp_path: Path) -> None:
    _refused(_cli(tmp_path, "codegen", EQ, "-o", "/dev/null"), "'/dev/null'", "not a regular")
    assert Path("/dev/null").is_char_device()


def test_empty_output_name_is_an_error(tmp_path: Path) -> None:
    for command in (["latex", EQ, "--steps", "2"], ["codegen", EQ], ["graph", EQ]):
        done = _cli(tmp_path, *command, "-o", "")
        _refused(done, "file name is empty")
        assert done.stdout == ""


@pytest.mark.parametrize(
    ("command", "name"), [("latex", "notes.docx"), ("latex", "notes.pdf"), ("codegen", "x.tex")]
)
def test_suffix_of_another_format_is_refused(tmp_path: Path, command: str, name: str) -> None:
    extra = ["--steps", "2"] if command == "latex" else []
    _refused(_cli(tmp_path, command, EQ, *extra, "-o", name), repr(name))
    assert list(tmp_path.iterdir()) == []


def test_long_file_name_works(tmp_path: Path) -> None:
    name = "a" * 243 + ".tex"  # 247 characters; the file system allows 255
    done = _cli(tmp_path, "latex", EQ, "--steps", "2", "-o", name)
    assert done.returncode == 0, done.stderr
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_errors_name_the_users_path_not_the_temporary(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "out.py"
    with pytest.raises(OSError) as info:
        write_atomic(missing, "x")
    assert info.value.filename == str(missing)


def test_write_all_leaves_nothing_when_a_later_file_fails(tmp_path: Path) -> None:
    first = tmp_path / "notes.tex"
    with pytest.raises(OSError):
        write_all([(first, "tex"), (tmp_path / "gone" / "notes.pdf", b"pdf")])
    assert list(tmp_path.iterdir()) == []


def test_write_all_removes_files_already_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.replace
    calls = []

    def flaky(src: str, dst: object) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", src)
        real(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError) as info:
        write_all([(tmp_path / "a.tex", "a"), (tmp_path / "a.pdf", b"b")])
    assert info.value.filename == str(tmp_path / "a.pdf")
    assert list(tmp_path.iterdir()) == []


def test_check_output_accepts_a_new_or_regular_file(tmp_path: Path) -> None:
    assert check_output(tmp_path / "new.tex") == tmp_path / "new.tex"
    (tmp_path / "old.tex").write_text("x")
    assert check_output(tmp_path / "old.tex") == tmp_path / "old.tex"


def test_codegen_api_refuses_a_symlink(tmp_path: Path) -> None:
    path = _special(tmp_path, "symlink")
    with pytest.raises(SymrnnError, match="symbolic link"):
        sr.codegen(sr.Recurrence.parse(EQ), path)
    assert (tmp_path / "elsewhere.txt").read_text() == "keep"


def test_demo_into_an_unwritable_folder_exits_2(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        folder = "/proc/self"  # root may write anywhere in a normal folder
    else:
        (tmp_path / "locked").mkdir(mode=0o555)
        folder = str(tmp_path / "locked")
    _refused(_cli(tmp_path, "demo", "-o", folder), "cannot write into the folder")


def test_sigterm_cleans_up_like_sigint(tmp_path: Path) -> None:
    """A slow pdflatex is stopped, its temporary folder removed, no output left behind."""
    fake = tmp_path / "bin"
    fake.mkdir()
    marker = tmp_path / "started"
    script = fake / "pdflatex"
    script.write_text(f'#!/bin/sh\npwd > "{marker}"\nexec sleep 60\n')
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    work = tmp_path / "work"
    work.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "symrnn", "latex", EQ, "--steps", "2", "-o", "n.tex", "--pdf"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the fake pdflatex never started"
    time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=30)
    assert child.returncode == 128 + signal.SIGTERM
    assert err == "symrnn: error: terminated\n"
    assert list(work.iterdir()) == []
    assert not Path(marker.read_text().strip()).exists()  # pdflatex's temporary folder
