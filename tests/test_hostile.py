"""Hostile input to the command line and the model loader.

Every case runs ``python -m symrnn …`` in a fresh process with a 2 GiB address-space limit and
asserts: exit status 2, exactly one line on stderr starting ``symrnn: error:``, no traceback,
bounded time, nothing executed (the SENTINEL file never appears) and no output file (nor a
temporary one) left behind.

Time is bounded twice: the child's CPU time must stay under :data:`CPU_SECONDS` (a measure that
does not depend on how busy the machine is), and a wall-clock timeout stops a hang.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import sympy as sp

import symrnn as sr
from symrnn.errors import SymrnnError
from symrnn.models import MAX_MODEL_BYTES, Model, load_model

SENTINEL = "SENTINEL"
TOUCH = f"__import__('os').system('touch {SENTINEL}')"
MEMORY_BYTES = 2 * 1024**3
CPU_SECONDS = 10
WALL_SECONDS = 120
RNN = "h(t) = tanh(w*h(t-1) + u*x(t) + b)"


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (2 * CPU_SECONDS, 2 * CPU_SECONDS))


def run_cli(folder: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "symrnn", *args],
        cwd=folder,
        capture_output=True,
        timeout=WALL_SECONDS,
        preexec_fn=_limits,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < CPU_SECONDS, f"took {cpu:.1f} s of CPU time"
    return done


def assert_refused(folder: Path, done: subprocess.CompletedProcess[bytes], keep: set[str]) -> str:
    err = done.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("symrnn: error: "), err
    assert done.returncode == 2, (done.returncode, err)
    assert done.stdout == b""
    assert not (folder / SENTINEL).exists(), "the input was executed"
    left = {p.name for p in folder.iterdir()} - keep
    assert not left, f"files left behind: {left}"
    return lines[0]


# ---------------------------------------------------------------- strings on the command line
EQUATIONS = {
    "import": TOUCH,
    "import in an equation": f"h(t) = {TOUCH}",
    "import after a semicolon": f"h(t) = h(t-1); {TOUCH}",
    "attribute": "h(t) = h(t-1).__class__.__mro__",
    "attribute of a number": "h(t) = (1).real + h(t-1)",
    "lambda": "h(t) = (lambda: h(t-1))()",
    "comprehension": "h(t) = sum([h(t-1) for _ in range(9)])",
    "generator": "h(t) = tanh(x for x in h(t-1))",
    "dunder name": "h(t) = __builtins__ + h(t-1)",
    "dunder call": "h(t) = __import__(h(t-1))",
    "eval": "h(t) = eval('h(t-1)')",
    "open": f"h(t) = open('{SENTINEL}', 'w') + h(t-1)",
    "string": "h(t) = 'abc' + h(t-1)",
    "f-string": "h(t) = f'{h(t-1)}'",
    "subscript": "h(t) = h(t-1)[0]",
    "walrus": "h(t) = (y := h(t-1))",
    "conditional": "h(t) = h(t-1) if x(t) else 0",
    "keyword argument": "h(t) = tanh(x=h(t-1))",
    "starred": "h(t) = tanh(*h(t-1))",
    "huge exponent": "h(t) = 9**9**9 + h(t-1)",
    "huge power of a state": "h(t) = h(t-1)**(10**100)",
    "huge number": "h(t) = " + "9" * 5000 + "*h(t-1)",
    "float overflow": "h(t) = 1e999999*h(t-1)",
    "deep brackets": "h(t) = " + "(" * 10_000 + "h(t-1)" + ")" * 10_000,
    "deep unary minus": "h(t) = " + "-" * 10_000 + "h(t-1)",
    "deep calls": "h(t) = " + "tanh(" * 10_000 + "h(t-1)" + ")" * 10_000,
    "long sum": "h(t) = " + "+".join(["x(t)"] * 5_000) + " + h(t-1)",
    "long text": "h(t) = h(t-1) + " + "x" * 120_000,  # one argv string holds at most 128 KiB
    "NUL": "h(t) = h(t-1)\0",
}


@pytest.mark.parametrize("text", list(EQUATIONS.values()), ids=list(EQUATIONS))
def test_hostile_equation(tmp_path, text):
    done = run_cli(tmp_path, "codegen", text.replace("\0", "\\0"), "-o", "out.py")
    assert_refused(tmp_path, done, keep=set())


def test_nul_byte_cannot_pass_the_command_line(tmp_path):
    # POSIX argv cannot hold NUL; the OS refuses before symrnn sees it.
    with pytest.raises(ValueError):
        run_cli(tmp_path, "unfold", "h(t) = h(t-1)\0", "--steps", "2")


def test_non_utf8_bytes_on_the_command_line(tmp_path):
    done = run_cli(tmp_path, "unfold", b"h(t) = h(t-1) + \xff\xfe", "--steps", "2")
    assert_refused(tmp_path, done, keep=set())


OPTIONS = {
    "steps 1e9": ["unfold", RNN, "--steps", "1000000000"],
    "steps 30 digits": ["unfold", RNN, "--steps", "9" * 30],
    "steps negative": ["unfold", RNN, "--steps", "-1"],
    "steps float": ["unfold", RNN, "--steps", "1e9"],
    "steps hex": ["unfold", RNN, "--steps", "0x10"],
    "steps word": ["unfold", RNN, "--steps", "four"],
    "closed form steps": ["unfold", RNN, "--steps", "5000", "--closed-form"],
    "grad steps": ["grad", RNN, "--steps", "100000000", "--loss", "h(t)**2"],
    "graph steps": ["graph", RNN, "--unfold", "100000", "-o", "g.dot"],
    "latex steps": ["latex", RNN, "--steps", "100000", "-o", "notes.tex"],
    "unrolled steps": ["codegen", RNN, "--mode", "unrolled", "--steps", "100000", "-o", "o.py"],
    "loss import": ["grad", RNN, "--steps", "3", "--loss", TOUCH],
    "loss lambda": ["check", RNN, "--loss", "(lambda: 0)()"],
    "loss huge exponent": ["check", RNN, "--loss", "h(t)**(9**9**9)"],
    "loss deep": ["grad", RNN, "--steps", "2", "--loss", "(" * 5000 + "h(t)" + ")" * 5000],
    "wrt import": ["grad", RNN, "--steps", "3", "--loss", "h(t)**2", "--wrt", TOUCH],
    "wrt dunder": ["grad", RNN, "--steps", "3", "--loss", "h(t)**2", "--wrt", "__class__"],
    "functions dunder": ["unfold", "s(t) = f(s(t-1))", "--functions", "__import__", "--steps", "2"],
    "seed huge": ["check", RNN, "--seed", "9" * 40],
    "unknown option": ["unfold", RNN, "--steps", "2", "--exec", TOUCH],
    "unknown command": [TOUCH],
    "graph suffix": ["graph", RNN, "-o", "graph.exe"],
    "output in missing folder": ["codegen", RNN, "-o", "missing/out.py"],
}


@pytest.mark.parametrize("argv", list(OPTIONS.values()), ids=list(OPTIONS))
def test_hostile_options(tmp_path, argv):
    assert_refused(tmp_path, run_cli(tmp_path, *argv), keep=set())


# ------------------------------------------------------------------------------ model files
MODEL_FILES: dict[str, bytes] = {
    "invalid TOML": b"equations = [\n",
    "not TOML at all": b"\x00\x01\x02 garbage",
    "non-UTF-8": b'name = "caf\xe9"\nequations = "h(t) = h(t-1)"\n',
    "steps a string": b'equations = "h(t) = h(t-1)"\nsteps = "four"\n',
    "steps a float": b'equations = "h(t) = h(t-1)"\nsteps = 4.5\n',
    "steps too many": b'equations = "h(t) = h(t-1)"\nsteps = 1000000000\n',
    "steps 5000 digits": b'equations = "h(t) = h(t-1)"\nsteps = ' + b"9" * 5000 + b"\n",
    "unknown key": b'equations = "h(t) = h(t-1)"\nexec = "rm -rf /"\n',
    "equations a number": b"equations = 3\n",
    "equations import": f'equations = "h(t) = {TOUCH}"\n'.replace("'", "\\'").encode(),
    "equations attribute": b'equations = ["h(t) = h(t-1).__class__"]\n',
    "loss import": (
        b'equations = "h(t) = h(t-1)"\nloss = "' + TOUCH.encode().replace(b"'", b"\\'") + b'"\n'
    ),
    "loss lambda": b'equations = "h(t) = h(t-1)"\nloss = "(lambda: 0)()"\n',
    "params a string": b'equations = "h(t) = w*h(t-1)"\n[params]\nw = "__import__"\n',
    "params unknown": b'equations = "h(t) = w*h(t-1)"\n[params]\n__class__ = 1\n',
    "deep TOML arrays": b"a = " + b"[" * 100_000,
    "deep inline tables": b"a = " + b"{b = " * 50_000,
    "huge exponent": b'equations = "h(t) = h(t-1)**(9**9**9)"\n',
}


@pytest.mark.parametrize("content", list(MODEL_FILES.values()), ids=list(MODEL_FILES))
def test_hostile_model_file(tmp_path, content):
    (tmp_path / "model.toml").write_bytes(content)
    done = run_cli(tmp_path, "codegen", "model.toml", "--steps", "3", "-o", "out.py")
    assert_refused(tmp_path, done, keep={"model.toml"})


def test_ten_megabyte_model_file(tmp_path):
    path = tmp_path / "big.toml"
    with open(path, "wb") as handle:
        handle.write(b'equations = "h(t) = h(t-1)"\n')
        handle.write((b"# " + b"x" * 1021 + b"\n") * (10 * 1024))
    assert path.stat().st_size > 10 * MAX_MODEL_BYTES
    line = assert_refused(
        tmp_path, run_cli(tmp_path, "unfold", "big.toml", "--steps", "2"), keep={"big.toml"}
    )
    assert "larger than the limit" in line


def test_model_file_that_never_ends(tmp_path):
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    done = run_cli(tmp_path, "unfold", "zero.toml", "--steps", "2")
    assert "not a regular file" in assert_refused(tmp_path, done, keep={"zero.toml"})


def test_model_file_that_is_a_folder(tmp_path):
    (tmp_path / "folder.toml").mkdir()
    done = run_cli(tmp_path, "unfold", "folder.toml", "--steps", "2")
    assert_refused(tmp_path, done, keep={"folder.toml"})


# ------------------------------------------------------------------------ the loader itself
@pytest.fixture
def no_string_evaluation(monkeypatch):
    """Fail if symrnn hands a string to sympify / parse_expr / eval while the test runs."""

    def refuse(name):
        def guard(arg, *args, **kwargs):
            if isinstance(arg, str):
                raise AssertionError(f"{name} called on the string {arg[:40]!r}")
            return real[name](arg, *args, **kwargs)

        return guard

    import sympy.parsing.sympy_parser as sympy_parser

    real = {"sympify": sp.sympify, "parse_expr": sympy_parser.parse_expr}
    monkeypatch.setattr(sp, "sympify", refuse("sympify"))
    monkeypatch.setattr(sympy_parser, "parse_expr", refuse("parse_expr"))
    monkeypatch.setattr(sp, "parse_expr", refuse("parse_expr"), raising=False)


@pytest.mark.parametrize("text", list(EQUATIONS.values()), ids=list(EQUATIONS))
def test_loader_refuses_hostile_equations(tmp_path, monkeypatch, no_string_evaluation, text):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SymrnnError) as exc:
        Model.from_equation(text)
    assert "\n" not in str(exc.value)
    toml = 'equations = """' + text.replace("\\", "\\\\").replace('"', '\\"') + '"""\n'
    with pytest.raises(SymrnnError):
        load_model(toml)
    assert not (tmp_path / SENTINEL).exists()


@pytest.mark.parametrize("content", list(MODEL_FILES.values()), ids=list(MODEL_FILES))
def test_loader_refuses_hostile_files(tmp_path, monkeypatch, no_string_evaluation, content):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SymrnnError) as exc:
        load_model(content)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / SENTINEL).exists()


def test_loader_reads_good_files_without_string_evaluation(no_string_evaluation):
    model = load_model(Path(__file__).parent.parent / "examples" / "elman.toml")
    assert model.recurrence == sr.cells.elman(outputs=1)


def test_environment_is_not_consulted(tmp_path):
    # A variable named like a parameter must not leak into the parsed model.
    env = dict(os.environ, w="__import__('os')")
    done = subprocess.run(
        [sys.executable, "-m", "symrnn", "unfold", RNN, "--steps", "1"],
        cwd=tmp_path,
        capture_output=True,
        timeout=WALL_SECONDS,
        env=env,
    )
    assert done.returncode == 0 and b"w*h(0)" in done.stdout


# ---------------------------------------------------------------------------- vector models
VECTOR_HEAD = 'sizes = { n = 3, m = 2 }\nvectors = { h = "n", x = "m" }\n'
VECTOR_MATRICES = 'matrices = { W = ["n", "n"], U = ["n", "m"] }\n'
VECTOR_FILES: dict[str, bytes] = {
    "sizes huge": b'sizes = { n = 1000000000 }\nequations = "h(t) = h(t-1)"\n',
    "sizes product": (
        b'sizes = { n = 1024 }\nvectors = { h = "n" }\nmatrices = { W = ["n", "n"] }\n'
        b'equations = "h(t) = W @ h(t-1)"\n'
    ),
    "sizes 5000 digits": b"sizes = { n = " + b"9" * 5000 + b' }\nequations = "h(t) = h(t-1)"\n',
    "sizes import": (b'sizes = { n = "__import__(\'os\')" }\nequations = "h(t) = h(t-1)"\n'),
    "sizes dunder name": b'sizes = { __class__ = 3 }\nequations = "h(t) = h(t-1)"\n',
    "vectors dunder": (
        b'sizes = { n = 3 }\nvectors = { __builtins__ = "n" }\nequations = "h(t) = h(t-1)"\n'
    ),
    "vectors size import": (
        b'sizes = { n = 3 }\nvectors = { h = "__import__" }\nequations = "h(t) = h(t-1)"\n'
    ),
    "matrices nested": (
        VECTOR_HEAD.encode() + b'matrices = { W = [["n"]] }\nequations = "h(t) = W @ h(t-1)"\n'
    ),
    "matmul of an import": (
        VECTOR_HEAD.encode()
        + VECTOR_MATRICES.encode()
        + f'equations = "h(t) = W @ {TOUCH}"\n'.replace("'", "\\'").encode()
    ),
    "transpose dunder": (
        VECTOR_HEAD.encode()
        + VECTOR_MATRICES.encode()
        + b'equations = "h(t) = W.__class__ @ h(t-1)"\n'
    ),
    "transpose of a call result": (
        VECTOR_HEAD.encode() + VECTOR_MATRICES.encode() + b'equations = "h(t) = W.T.mro()"\n'
    ),
    "shape mismatch": (
        VECTOR_HEAD.encode() + VECTOR_MATRICES.encode() + b'equations = "h(t) = W @ x(t)"\n'
    ),
    "hadamard mismatch": (
        VECTOR_HEAD.encode()
        + VECTOR_MATRICES.encode()
        + b'equations = "h(t) = W @ h(t-1) + x(t) * h(t-1)"\n'
    ),
    "deep matmul": (
        VECTOR_HEAD.encode()
        + VECTOR_MATRICES.encode()
        + b'equations = "h(t) = '
        + b"W @ (" * 5000
        + b"h(t-1)"
        + b")" * 5000
        + b'"\n'
    ),
    "cell import": b"cell = \"__import__('os')\"\n",
    "cell from_torch": b'cell = "from_torch"\n',
    "cell huge": b'cell = "lstm"\nsizes = { n = 1024, m = 1024 }\n',
    "cell and equations": b'cell = "lstm"\nequations = "h(t) = h(t-1)"\n',
    "params_file pickle name": b'equations = "h(t) = w*h(t-1)"\nparams_file = "evil.pkl"\n',
    "params_file missing": b'equations = "h(t) = w*h(t-1)"\nparams_file = "missing.npz"\n',
    "params_file a device": b'equations = "h(t) = w*h(t-1)"\nparams_file = "/dev/zero.npz"\n',
    "params_file a number": b'equations = "h(t) = w*h(t-1)"\nparams_file = 3\n',
}


@pytest.mark.parametrize("content", list(VECTOR_FILES.values()), ids=list(VECTOR_FILES))
def test_hostile_vector_model_file(tmp_path, content):
    (tmp_path / "model.toml").write_bytes(content)
    done = run_cli(tmp_path, "codegen", "model.toml", "--steps", "3", "-o", "out.py")
    assert_refused(tmp_path, done, keep={"model.toml"})


@pytest.mark.parametrize("content", list(VECTOR_FILES.values()), ids=list(VECTOR_FILES))
def test_loader_refuses_hostile_vector_files(tmp_path, monkeypatch, no_string_evaluation, content):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SymrnnError) as exc:
        load_model(content)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / SENTINEL).exists()


VECTOR_EQ = "h(t) = tanh(W @ h(t-1) + U @ x(t))"
DECLARED = ["--size", "n=3,m=2", "--vectors", "h=n,x=m", "--matrices", "W=n:n,U=n:m"]
VECTOR_OPTIONS = {
    "size huge": ["unfold", VECTOR_EQ, "--size", "n=99999999999999,m=2", "--steps", "1"],
    "size import": ["unfold", VECTOR_EQ, "--size", f"n={TOUCH}", "--steps", "1"],
    "size no value": ["unfold", VECTOR_EQ, "--size", "n", "--steps", "1"],
    "vectors dunder": ["unfold", VECTOR_EQ, "--size", "n=3", "--vectors", "__class__=n"],
    "matrices import": ["unfold", VECTOR_EQ, *DECLARED[:4], "--matrices", f"W={TOUCH}"],
    "matmul import": ["codegen", f"h(t) = W @ {TOUCH}", *DECLARED, "-o", "out.py"],
    "transpose attribute": ["codegen", "h(t) = W.T.T.__class__", *DECLARED, "-o", "out.py"],
    "shape mismatch": ["codegen", "h(t) = W @ x(t)", *DECLARED, "-o", "out.py"],
    "cell import": ["unfold", "--cell", TOUCH, "--steps", "1"],
    "cell dunder": ["unfold", "--cell", "__class__", "--steps", "1"],
    "cell with equations": ["unfold", VECTOR_EQ, "--cell", "lstm", "--steps", "1"],
    "cell huge": ["check", "--cell", "gru", "--size", "n=1024,m=1024"],
    "cell size dunder": ["check", "--cell", "gru", "--size", "__class__=3"],
    "cell loss import": ["check", "--cell", "gru", "--size", "n=2", "--loss", TOUCH],
    "with-params wrong option": ["codegen", "--cell", "gru", "--with-params=1", "-o", "out.py"],
}


@pytest.mark.parametrize("argv", list(VECTOR_OPTIONS.values()), ids=list(VECTOR_OPTIONS))
def test_hostile_vector_options(tmp_path, argv):
    assert_refused(tmp_path, run_cli(tmp_path, *argv), keep=set())


def test_pickled_params_file_is_never_loaded(tmp_path):
    # An object array in an .npz is a pickle; loading it would run __reduce__ (os.system here).
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / SENTINEL}",))

    payload = pickle.dumps(Evil())
    assert b"system" in payload
    import numpy as np

    np.savez(tmp_path / "weights.npz", W=np.array([Evil()], dtype=object))
    (tmp_path / "model.toml").write_text(
        'sizes = { n = 2 }\nvectors = { h = "n" }\nmatrices = { W = ["n", "n"] }\n'
        'equations = "h(t) = W @ h(t-1)"\nparams_file = "weights.npz"\n'
    )
    done = run_cli(tmp_path, "codegen", "model.toml", "--with-params", "-o", "out.py")
    line = assert_refused(tmp_path, done, keep={"model.toml", "weights.npz"})
    assert "pickled" in line


def test_params_file_that_inflates(tmp_path):
    # 200 MB of zeros compress to ~200 kB: the sizes in the archive are checked before unpacking.
    import zipfile

    with zipfile.ZipFile(tmp_path / "weights.npz", "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("W.npy", "w", force_zip64=True) as member:
            chunk = b"\0" * 1_000_000
            for _ in range(200):
                member.write(chunk)
    (tmp_path / "model.toml").write_text(
        'sizes = { n = 2 }\nvectors = { h = "n" }\nmatrices = { W = ["n", "n"] }\n'
        'equations = "h(t) = W @ h(t-1)"\nparams_file = "weights.npz"\n'
    )
    done = run_cli(tmp_path, "check", "model.toml")
    line = assert_refused(tmp_path, done, keep={"model.toml", "weights.npz"})
    assert "unpacks to more than" in line
