r"""The command line: ``symrnn unfold | solve | grad | check | latex | graph | codegen | demo``.

Every command reads a recurrence from a model file (``.toml``, see :mod:`symrnn.models`) or from
equations given directly (``"h(t) = tanh(w*h(t-1) + x(t))"``, several separated by ``;``).
Strings go through the whitelist parser only.  Output files are written atomically.

Exit status: 0 on success; 1 when ``check`` finds a failing comparison or ``solve`` finds no
closed form; 2 on bad input (one line ``symrnn: error: …`` on stderr naming the problem and the
remedy); 3 on an internal error (rerun with ``--debug`` for the traceback).

The modules behind the commands are imported when a command runs, so a command whose module
cannot be imported fails alone.

>>> main(["unfold", "s(t) = f(s(t-1), theta)", "--functions", "f", "--steps", "2"])
s(1) = f(s(0), theta)
s(2) = f(s(1), theta)
0
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import sympy as sp

from .errors import LimitError, NoClosedForm, ParseError, SymrnnError, ToolMissing
from .files import check_output, write_all, write_atomic
from .models import Model, check_steps, load_model
from .notation import (
    identifier,
    is_time_atom,
    latex_expr,
    lecture_text,
    str_expr,
    t,
)
from .parsing import MAX_TEXT
from .unfold import MAX_STEPS

__all__ = [
    "main",
    "MAX_UNFOLD_STEPS",
    "MAX_CLOSED_FORM_STEPS",
    "MAX_PRINTED_CLOSED_FORM_NODES",
    "MAX_GRAD_STEPS",
    "MAX_RESOLVED_STEPS",
    "MAX_CHECK_STEPS",
    "MAX_LATEX_STEPS",
    "MAX_GRAPH_STEPS",
    "MAX_UNROLLED_STEPS",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
]

#: ``unfold``: steps of the printed chain (about a second per thousand steps).
MAX_UNFOLD_STEPS = 10_000
#: ``unfold --closed-form``: closed forms nest one level per step; deeper ones exceed SymPy's
#: recursion when printed.
MAX_CLOSED_FORM_STEPS = 50
#: ``unfold --closed-form``: nodes of the last closed form as a tree, estimated before any is
#: built (printing takes about 30 µs a node; a state used twice in its update doubles them).
MAX_PRINTED_CLOSED_FORM_NODES = 20_000
#: ``grad``: steps of the adjoint (BPTT) chain printed.
MAX_GRAD_STEPS = 1_000
#: ``grad --resolved``: gradients written in forward quantities only grow quadratically.
MAX_RESOLVED_STEPS = 20
#: ``check``: steps verified (closed forms and ``sp.diff`` are compared at every step).
MAX_CHECK_STEPS = 50
#: ``latex`` and every ``--latex`` listing of all steps.
MAX_LATEX_STEPS = 50
#: ``graph --unfold``: one node per variable per step.
MAX_GRAPH_STEPS = 50
#: ``codegen --mode unrolled``: straight-line code for a fixed T (about 2.5 s per 100 steps).
MAX_UNROLLED_STEPS = 200

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

_PROG = "symrnn"
_EQ_EXAMPLE = "h(t) = tanh(w*h(t-1) + u*x(t) + b)"
_GRAPH_SUFFIXES = (".dot", ".svg", ".png", ".pdf")


class _UsageError(Exception):
    """An argparse error, reported on one line with exit status 2."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Internal(Exception):
    """A part of symrnn that a command needs is missing (exit status 3)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message, self.prog)


# ==================================================================================== main
class _Terminated(BaseException):
    """SIGTERM, raised where the program is, so that clean-up runs as it does for Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    if threading.current_thread() is not threading.main_thread():
        return _main(argv)  # signal handlers can only be set in the main thread
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if callable(reconfigure):
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError):  # a stream that cannot change its error handler
                pass
    try:
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exc:  # --help and --version
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
        debug = debug or bool(getattr(args, "debug", False))
        return int(args.run(args) or EXIT_OK)
    except _UsageError as exc:
        return _report(f"{exc}; see '{exc.prog} --help'", EXIT_USAGE, debug)
    except NoClosedForm as exc:
        remedy = "on the command line: symrnn unfold MODEL|EQ --steps N --closed-form"
        return _report(f"{exc} ({remedy})", EXIT_FAILED, debug)
    except SymrnnError as exc:
        return _report(str(exc), EXIT_USAGE, debug)
    except _Internal as exc:
        return _report(str(exc), EXIT_INTERNAL, debug)
    except RecursionError:
        return _report(
            "the expressions are too deeply nested for SymPy; use fewer steps or a shorter "
            "expression",
            EXIT_USAGE,
            debug,
        )
    except MemoryError:
        return _report(
            "ran out of memory; use fewer steps or a smaller expression", EXIT_USAGE, debug
        )
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            _silence_stdout()
            return EXIT_OK
        name = f" {_quote(str(exc.filename))}" if exc.filename else ""
        reason = exc.strerror or type(exc).__name__
        return _report(
            f"cannot access{name}: {reason}; check that the path exists and is writable",
            EXIT_USAGE,
            debug,
        )
    except KeyboardInterrupt:
        return _report("interrupted", 130, debug)
    except _Terminated:
        return _report("terminated", 128 + signal.SIGTERM, debug)
    except Exception as exc:
        return _report(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in symrnn: rerun with "
            "--debug for the traceback and report it",
            EXIT_INTERNAL,
            debug,
        )


def _report(message: str, status: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    text = " ".join(message.split())
    if len(text) > 2000:
        text = text[:1997] + "..."
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    sys.stderr.write(f"{_PROG}: error: {text}\n")
    sys.stderr.flush()
    return status


def _silence_stdout() -> None:
    # After a closed pipe (symrnn ... | head), make the final flush at exit harmless.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


# ================================================================================= parsers
_MAIN_EPILOG = f"""\
Examples, one per command:
  symrnn unfold "h(t) = tanh(w*h(t-1) + u*x(t) + b)" --steps 3
  symrnn solve "h(t) = a*h(t-1) + u*x(t)"
  symrnn grad examples/elman.toml --steps 3 --wrt w,u
  symrnn check examples/elman.toml --steps 4
  symrnn latex examples/elman.toml --steps 3 -o notes.tex --document
  symrnn graph examples/elman.toml --unfold 3 -o graph.svg
  symrnn codegen examples/elman.toml --steps 4 -o elman_numpy.py
  symrnn demo -o symrnn-demo

MODEL|EQ is a model file (a path ending in .toml, or an existing file) or equations such as
"{_EQ_EXAMPLE}", several separated by ';'.  Abstract update functions are
declared with --functions f (or functions = ["f"] in the file).

Exit status: 0 success, 1 a check failed or no closed form exists, 2 bad input, 3 internal
error.  Every error is one line on stderr; --debug shows the traceback.
"""


def _parser() -> _Parser:
    parser = _Parser(
        prog=_PROG,
        description="Derive the mathematics of recurrent computations exactly: unfold, "
        "differentiate (BPTT), solve, verify, and write LaTeX, graphs and NumPy code.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    commands.required = True

    common = _Parser(add_help=False, allow_abbrev=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )

    def command(name: str, summary: str, examples: str, run: Callable[[Any], int]) -> _Parser:
        sub = commands.add_parser(
            name,
            help=summary,
            description=summary,
            epilog="Examples:\n" + examples,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[common],
            allow_abbrev=False,
        )
        sub.set_defaults(run=run)
        return sub

    def model_arguments(sub: _Parser, loss: bool = False) -> None:
        sub.add_argument(
            "model",
            metavar="MODEL|EQ",
            nargs="?",
            help="a model file (.toml) or equations such as "
            f"'{_EQ_EXAMPLE}' (several separated by ';'); omitted with --cell",
        )
        sub.add_argument(
            "--functions",
            metavar="NAMES",
            type=_names_argument,
            default=(),
            help="abstract update functions used in EQ, comma-separated (e.g. f)",
        )
        vector_arguments(sub)
        if loss:
            sub.add_argument(
                "--loss",
                metavar="EXPR",
                type=_text_argument,
                help="per-step loss in t, summed over the steps, e.g. '(h(t) - y(t))**2/2' "
                "(overrides the model file's)",
            )

    def vector_arguments(sub: _Parser) -> None:
        sub.add_argument(
            "--size",
            metavar="SIZES",
            type=_pairs_argument,
            help="sizes for vector models, e.g. n=3,m=2 (an integer, or symbolic)",
        )
        sub.add_argument(
            "--vectors",
            metavar="DECLS",
            type=_pairs_argument,
            help="vectors in EQ and their sizes, e.g. h=n,x=m",
        )
        sub.add_argument(
            "--matrices",
            metavar="DECLS",
            type=_pairs_argument,
            help="parameter matrices in EQ and their sizes, rows:columns, e.g. W=n:n,U=n:m,b=n",
        )
        sub.add_argument(
            "--cell",
            metavar="NAME",
            type=_text_argument,
            help="a cell of symrnn.cells instead of MODEL|EQ, e.g. lstm, sized by --size "
            "n=UNITS,m=INPUTS,k=OUTPUTS",
        )

    def steps_argument(sub: _Parser, limit: int, extra: str = "") -> None:
        sub.add_argument(
            "--steps",
            metavar="N",
            type=_steps_argument,
            help=f"number of time steps, 1 to {limit:,} (default: the model file's){extra}",
        )

    sub = command(
        "unfold",
        "Unfold a recurrence into its chain of per-step equations h(1), h(2), ...",
        '  symrnn unfold "h(t) = tanh(w*h(t-1) + u*x(t) + b)" --steps 3\n'
        '  symrnn unfold "s(t) = f(s(t-1), theta)" --functions f --steps 3 --closed-form\n'
        "  symrnn unfold examples/elman.toml --steps 2 --latex\n"
        '  symrnn unfold "s(t) = f(s(t-1), theta)" --functions f --steps 3 --nested --latex\n',
        _cmd_unfold,
    )
    model_arguments(sub)
    steps_argument(sub, MAX_UNFOLD_STEPS)
    sub.add_argument(
        "--closed-form",
        action="store_true",
        help=f"print the closed forms g(k) in initial states and inputs (at most "
        f"{MAX_CLOSED_FORM_STEPS} steps)",
    )
    sub.add_argument(
        "--nested",
        action="store_true",
        help="print the lecture's nested form of the last step, s(3) = f(s(2)) = f(f(s(1))) "
        f"= ..., down to the initial state (at most {MAX_CLOSED_FORM_STEPS} steps)",
    )
    sub.add_argument(
        "--latex", action="store_true", help=f"print LaTeX (at most {MAX_LATEX_STEPS} steps)"
    )

    sub = command(
        "solve",
        "Solve a recurrence in closed form for symbolic t (linear recurrences).",
        '  symrnn solve "h(t) = a*h(t-1) + u*x(t)"\n'
        '  symrnn solve "s(t) = s(t-1) + s(t-2)" --latex\n',
        _cmd_solve,
    )
    model_arguments(sub)
    sub.add_argument("--latex", action="store_true", help="print LaTeX")

    sub = command(
        "grad",
        "Differentiate the total loss through time: BPTT equations and the gradient.",
        '  symrnn grad "h(t) = tanh(w*h(t-1) + u*x(t) + b)" --steps 3 '
        "--loss '(h(t) - y(t))**2/2'\n"
        "  symrnn grad examples/elman.toml --steps 3 --wrt w,u --resolved\n"
        "  symrnn grad examples/elman.toml --wrt 'h(0)' --latex\n"
        "  symrnn grad examples/elman_vector.toml            # matrix form for vector models\n"
        "  symrnn grad --cell lstm --size n=3,m=2\n",
        _cmd_grad,
    )
    model_arguments(sub, loss=True)
    steps_argument(sub, MAX_GRAD_STEPS)
    sub.add_argument(
        "--wrt",
        metavar="NAMES",
        type=_text_argument,
        help="differentiate with respect to these, comma-separated: parameters, initial "
        "states h(0), inputs x(k) (default: every parameter)",
    )
    sub.add_argument(
        "--resolved",
        action="store_true",
        help="write the gradient in forward quantities only, without adjoints (at most "
        f"{MAX_RESOLVED_STEPS} steps)",
    )
    form = sub.add_mutually_exclusive_group()
    form.add_argument(
        "--matrix",
        action="store_true",
        help="the BPTT equations in matrix form, as Goodfellow et al. print them (the default "
        "for vector models)",
    )
    form.add_argument(
        "--components",
        action="store_true",
        help="the BPTT chain of scalar components over --steps (the default for scalar models)",
    )
    sub.add_argument(
        "--latex", action="store_true", help=f"print LaTeX (at most {MAX_LATEX_STEPS} steps)"
    )

    sub = command(
        "check",
        "Verify every derived form against the others numerically and print the table.",
        "  symrnn check examples/elman.toml\n"
        '  symrnn check "h(t) = tanh(w*h(t-1) + x(t))" --steps 4 --json\n'
        '  symrnn check "h(t) = tanh(W @ h(t-1) + U @ x(t))" --size n=3,m=2 '
        "--vectors h=n,x=m --matrices W=n:n,U=n:m\n",
        _cmd_check,
    )
    model_arguments(sub, loss=True)
    steps_argument(sub, MAX_CHECK_STEPS, "; without either, 5")
    sub.add_argument("--seed", type=_seed_argument, default=0, help="random seed (default 0)")
    sub.add_argument("--json", action="store_true", help="print the report as JSON")

    sub = command(
        "latex",
        "Write the derivation (recurrence, unfolding, closed forms, loss, BPTT, checks) as "
        "LaTeX or Markdown.",
        "  symrnn latex examples/elman.toml --steps 3 -o notes.tex --document\n"
        "  symrnn latex examples/elman.toml --steps 3 -o notes.tex --pdf\n"
        "  symrnn latex examples/elman.toml --steps 3 -o notes.tex --pdf --figures\n"
        "  symrnn latex examples/elman.toml --steps 3 -o notes.md\n",
        _cmd_latex,
    )
    model_arguments(sub, loss=True)
    steps_argument(sub, MAX_LATEX_STEPS)
    sub.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (.tex, or .md for Markdown)"
    )
    sub.add_argument("--document", action="store_true", help="a complete LaTeX document")
    sub.add_argument(
        "--pdf",
        action="store_true",
        help="also compile a PDF next to FILE with pdflatex (implies --document)",
    )
    sub.add_argument(
        "--figures",
        action="store_true",
        help="add the computational graphs (TikZ laid out by Graphviz; needs dot)",
    )

    sub = command(
        "graph",
        "Draw the computational graph of a recurrence: folded (one-step delay) or unfolded.",
        "  symrnn graph examples/elman.toml -o elman.svg\n"
        "  symrnn graph examples/elman.toml --unfold 3 -o elman_unfolded.png\n"
        '  symrnn graph "h(t) = tanh(w*h(t-1) + x(t))" --unfold 2 -o rnn.dot\n'
        "  symrnn graph examples/elman.toml --bptt -o fig_10_3.svg\n",
        _cmd_graph,
    )
    model_arguments(sub, loss=True)
    kind = sub.add_mutually_exclusive_group()
    kind.add_argument(
        "--unfold",
        metavar="N",
        type=_steps_argument,
        nargs="?",
        const=0,
        help=f"the unfolded graph over N steps (default: the model file's; at most "
        f"{MAX_GRAPH_STEPS})",
    )
    kind.add_argument("--folded", action="store_true", help="the folded graph (default)")
    kind.add_argument(
        "--bptt",
        metavar="N",
        type=_steps_argument,
        nargs="?",
        const=0,
        help="the unfolded graph over N steps with the loss and the backward (BPTT) edges, as "
        "Goodfellow et al. Fig. 10.3 (default N: the model file's steps; needs a loss)",
    )
    sub.add_argument(
        "--dpi",
        type=int,
        default=None,
        help="resolution of a .png drawing (default: Graphviz's 96)",
    )
    sub.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE: .dot (DOT text), or .svg, .png, .pdf (needs Graphviz); "
        "default: DOT on stdout",
    )

    sub = command(
        "codegen",
        "Generate a standalone NumPy module: forward pass, loss and exact gradient.",
        "  symrnn codegen examples/elman.toml -o elman_numpy.py\n"
        "  symrnn codegen examples/elman.toml --steps 4 --mode unrolled -o elman_4.py\n",
        _cmd_codegen,
    )
    model_arguments(sub, loss=True)
    steps_argument(sub, MAX_UNROLLED_STEPS, "; used by --mode unrolled, scan code runs any T")
    sub.add_argument(
        "--mode",
        choices=("scan", "unrolled"),
        default="scan",
        help="scan: a step function looped over any T (default); unrolled: straight-line code "
        "for --steps",
    )
    sub.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default: stdout)")
    sub.add_argument(
        "--with-params",
        action="store_true",
        help="write the parameter values into the module as PARAM_VALUES (from params_file and "
        "[params]; the others drawn at random with --seed)",
    )
    sub.add_argument(
        "--seed", type=_seed_argument, default=0, help="seed of values drawn for --with-params"
    )

    sub = command(
        "demo",
        "Run the whole pipeline on the lecture's examples and write notes, drawings and code.",
        "  symrnn demo\n  symrnn demo -o /tmp/rnn-notes\n",
        _cmd_demo,
    )
    sub.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        default="symrnn-demo",
        help="folder to write into (default: ./symrnn-demo)",
    )
    return parser


def _version() -> str:
    from . import __version__

    return __version__


# ----------------------------------------------------------------------- argument types
def _steps_argument(text: str) -> int:
    text = text.strip().replace("_", "")
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number of steps such as 4, got {_quote(text)}"
        )
    if len(text) > 12:
        raise argparse.ArgumentTypeError(
            f"{len(text)}-digit step counts are far beyond the limits (at most {MAX_STEPS:,})"
        )
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("the number of steps must be at least 1")
    return value


def _seed_argument(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to 999999999, got {_quote(text)}"
        )
    return int(text)


def _text_argument(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise argparse.ArgumentTypeError(
            f"the text has {len(text):,} characters, more than the limit of {MAX_TEXT:,}"
        )
    return text


def _names_argument(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if not (
            name.isascii()
            and name[0].isalpha()
            and name.replace("_", "").isalnum()
            and "__" not in name
            and len(name) <= 64
        ):
            raise argparse.ArgumentTypeError(
                f"{_quote(name)} is not a function name; use names such as f or g_h"
            )
    if not names:
        raise argparse.ArgumentTypeError("give at least one name, e.g. --functions f")
    return names


def _pairs_argument(text: str) -> dict[str, Any]:
    """``n=3,m=2`` or ``W=n:n,b=n`` as a table like a model file's (checked by symrnn.models)."""
    if len(text) > 10_000:
        raise argparse.ArgumentTypeError(f"the list has {len(text):,} characters; keep it short")
    out: dict[str, Any] = {}
    for item in (part.strip() for part in text.split(",")):
        name, sign, value = item.partition("=")
        if not sign or not name.strip() or not value.strip():
            raise argparse.ArgumentTypeError(
                f"{_quote(item)} is not name=value; write e.g. n=3,m=2 or W=n:n,b=n"
            )
        parts = [_size_value(v.strip()) for v in value.split(":")]
        out[name.strip()] = parts[0] if len(parts) == 1 else parts
    return out


def _size_value(text: str) -> Any:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else text


def _quote(text: str) -> str:
    text = " ".join(str(text).split())
    return repr(text if len(text) <= 60 else text[:57] + "...")


# ================================================================================= inputs
def _is_model_file(source: str) -> bool:
    if "\n" in source or "\0" in source:
        return False
    if source.endswith(".toml"):
        return True
    try:
        return os.path.isfile(source)
    except (OSError, ValueError):
        return False


def _model(args: Any) -> Model:
    """The model named by the MODEL|EQ argument (or --cell), with --loss applied."""
    source: str | None = args.model
    functions: tuple[str, ...] = args.functions
    declared = {"--size": args.size, "--vectors": args.vectors, "--matrices": args.matrices}
    if args.cell is not None or source is None:
        model = _cell_model(args, source, declared)
    elif _is_model_file(source):
        given = [option for option, value in declared.items() if value is not None]
        if given:
            raise ParseError(
                f"{given[0]} is for equations given on the command line; the model file "
                "declares its own sizes, vectors and matrices"
            )
        if functions:
            raise ParseError(
                "--functions is for equations given on the command line; declare the functions "
                'in the model file instead: functions = ["f"]'
            )
        model = load_model(Path(source))
    else:
        if "=" not in source:
            raise ParseError(
                f"{_quote(source)} is neither a model file (no such .toml file) nor an "
                f"equation (it has no '='); give a path such as examples/elman.toml or "
                f"equations such as '{_EQ_EXAMPLE}'"
            )
        if len(source) > MAX_TEXT:
            raise LimitError(
                f"the equations have {len(source):,} characters, more than the limit of "
                f"{MAX_TEXT:,}; shorten them with intermediate quantities"
            )
        model = Model.from_equation(
            source,
            functions=functions,
            sizes=args.size,
            vectors=args.vectors,
            matrices=args.matrices,
        )
    loss = getattr(args, "loss", None)
    if loss is not None:
        model = model.with_options(loss=loss)
    return model


def _cell_model(args: Any, source: str | None, declared: dict[str, Any]) -> Model:
    if args.cell is None:
        raise ParseError(
            "give a model file, equations such as "
            f"'{_EQ_EXAMPLE}', or a cell with --cell lstm --size n=3,m=2"
        )
    if source is not None:
        raise ParseError(
            f"--cell {_quote(args.cell)} replaces MODEL|EQ; give one of them, not both"
        )
    for option in ("--matrices",):
        if declared[option] is not None:
            raise ParseError(f"--cell brings its own parameters; remove {option}")
    if args.functions:
        raise ParseError("--cell brings its own equations; remove --functions")
    return Model.from_cell(args.cell, sizes=args.size, vectors=args.vectors)


def _steps(args: Any, model: Model, limit: int, command: str, default: int | None = None) -> int:
    """The step count from --steps or the model file, within ``limit`` for ``command``."""
    given = getattr(args, "steps", None)
    value = given if given is not None else model.steps
    if value is None:
        if default is not None:
            return default
        raise ParseError(
            f"{command} needs the number of steps: give --steps N (or steps = N in the model file)"
        )
    origin = "--steps" if given is not None else "steps in the model file"
    if value > limit:
        raise LimitError(
            f"{origin} is {value:,}, more than symrnn {command} allows ({limit:,}); use fewer steps"
        )
    return check_steps(value, limit, origin)


def _require_loss(model: Model, command: str) -> None:
    if model.loss is None:
        raise ParseError(
            f"{command} needs a loss: give --loss EXPR such as '(h(t) - y(t))**2/2' "
            '(or loss = "..." in the model file)'
        )


def _api(name: str, module: str) -> Any:
    """``symrnn.<name>`` if the package exports it, else ``symrnn.<module>.<name>``."""
    import symrnn

    value = getattr(symrnn, name, None)
    if callable(value) and not isinstance(value, types.ModuleType):
        return value
    try:
        imported = importlib.import_module(f"symrnn.{module}")
        return getattr(imported, name)
    except (ImportError, AttributeError) as exc:
        raise _Internal(
            f"this command needs symrnn.{module}.{name}, which cannot be imported "
            f"({type(exc).__name__}: {exc}); reinstall symrnn"
        ) from exc


def _write(path: str | Path, data: str | bytes) -> Path:
    target = Path(path)
    _check_target(target)
    return write_atomic(target, data)


_LATEX_SUFFIXES = (".tex", ".md")


def _output(text: str | None, suffixes: tuple[str, ...] | None, command: str) -> Path | None:
    """The -o path, or None for stdout; an empty name or a suffix of another format is refused."""
    if text is None:
        return None
    path = check_output(text)
    if suffixes is not None and path.suffix and path.suffix.lower() not in suffixes:
        raise ParseError(
            f"-o {_quote(text)}: {command} writes {' or '.join(suffixes)} files, not "
            f"{path.suffix}; give a name such as out{suffixes[0]}"
        )
    return path


def _check_target(target: Path) -> None:
    check_output(target)
    if target.is_dir():
        raise SymrnnError(f"{_quote(str(target))} is a folder; give a file name such as out.py")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise SymrnnError(
            f"the folder {_quote(str(folder))} does not exist; create it first or write elsewhere"
        )


# =========================================================================== plain text
def _lecture(expr: Any) -> str:
    return lecture_text(expr)


def _eq_line(lhs: Any, rhs: Any) -> str:
    return f"{str_expr(lhs)} = {str_expr(rhs)}"


def _aligned(rows: list[str]) -> str:
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


# =============================================================================== commands
def _cmd_unfold(args: Any) -> int:
    from .unfold import unfold

    model = _model(args)
    steps = _steps(args, model, MAX_UNFOLD_STEPS, "unfold")
    if args.nested and args.closed_form:
        raise ParseError("give --nested or --closed-form, not both")
    if args.nested and steps > MAX_CLOSED_FORM_STEPS:
        raise LimitError(
            f"--nested prints at most {MAX_CLOSED_FORM_STEPS} steps, got {steps:,}; use fewer steps"
        )
    if args.closed_form and steps > MAX_CLOSED_FORM_STEPS:
        raise LimitError(
            f"closed forms are printed for at most {MAX_CLOSED_FORM_STEPS} steps, got {steps:,}; "
            "use fewer steps, or drop --closed-form to print the chain"
        )
    if args.latex and steps > MAX_LATEX_STEPS:
        raise LimitError(
            f"--latex prints at most {MAX_LATEX_STEPS} steps, got {steps:,}; use fewer steps"
        )
    U = unfold(model.recurrence, steps)
    if args.nested:
        return _print_nested(U, args.latex)
    if args.closed_form:
        size = max(U.closed_form_size(steps, of=f) for f in model.recurrence.defined)
        if size > MAX_PRINTED_CLOSED_FORM_NODES:
            raise LimitError(
                f"the closed form at step {steps} would have about {size:,} nodes, more than "
                f"the limit of {MAX_PRINTED_CLOSED_FORM_NODES:,} for printing; use fewer steps, "
                "or drop --closed-form to print the chain"
            )
        pairs = [
            (f(k), U.closed_form(k, of=f))
            for k in range(1, steps + 1)
            for f in model.recurrence.defined
        ]
        if args.latex:
            _out(_aligned([f"{latex_expr(a)} &= {latex_expr(b)}" for a, b in pairs]))
        else:
            for a, b in pairs:
                _out(_eq_line(a, b))
        return EXIT_OK
    if args.latex:
        _out(_aligned([f"{latex_expr(e.lhs)} &:= {latex_expr(e.rhs)}" for e in U.equations]))
    else:
        for eq in U.equations:
            _out(_eq_line(eq.lhs, eq.rhs))
    return EXIT_OK


def _print_nested(U: Any, latex: bool) -> int:
    """The lecture's s^{(k)} = f(s^{(k-1)}; θ) = f(f(s^{(k-2)}; θ); θ) = …, for each state."""
    k = U.steps
    for f in U.recurrence.states:
        forms = [U.nested(k, of=f, levels=level) for level in range(1, k + 1)]
        if latex:
            from .latex import equation_chain

            _out(equation_chain(latex_expr(f(k)), [latex_expr(form) for form in forms]))
        else:
            _out(" = ".join([lecture_text(f(k)), *(lecture_text(form) for form in forms)]))
    return EXIT_OK


def _cmd_solve(args: Any) -> int:
    model = _model(args)
    solve = _api("solve", "solve")
    solution = solve(model.recurrence)
    if args.latex:
        _out(solution._repr_latex_().strip().strip("$"))
    else:
        _out(str(solution))
        method = getattr(solution, "method", None)
        check = getattr(solution, "check", None)
        if method is not None and check is not None:
            _out(f"# method: {method}; check: {check}")
    return EXIT_OK


def _wrt(model: Model, text: str | None) -> list[Any] | None:
    from .parsing import parse_expression

    if text is None:
        return None
    rec = model.recurrence
    names: dict[str, Any] = {str(p): p for p in rec.params}
    names.update((f.__name__, f) for f in (*rec.defined, *rec.inputs))
    extra = set()
    if model.loss is not None:
        extra = {s for s in model.loss.free_symbols if s != t}
        names.update((str(s), s) for s in extra)
    allowed = sorted({str(p) for p in rec.params} | {str(s) for s in extra})
    wrt = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise ParseError(f"--wrt {_quote(text)} has an empty name; write e.g. --wrt w,u")
        try:
            value = parse_expression(item, names=names, functions=model.functions)
        except SymrnnError as exc:
            raise type(exc)(f"--wrt: {exc}") from exc
        if isinstance(value, sp.Symbol) and str(value) in allowed:
            wrt.append(value)
        elif is_time_atom(value) and value.args[0].is_Integer:
            wrt.append(value)
        else:
            raise ParseError(
                f"--wrt {_quote(item)} is neither a parameter ({', '.join(allowed) or 'none'}) "
                "nor an initial state or input at a fixed time such as h(0) or x(1); "
                "write e.g. --wrt w,u"
            )
    return wrt


def _cmd_grad(args: Any) -> int:
    from .diff import Adjoint, bptt, grad
    from .unfold import unfold

    model = _model(args)
    if args.matrix or (model.is_vector and not args.components):
        return _matrix_grad(args, model)
    steps = _steps(args, model, MAX_GRAD_STEPS, "grad")
    _require_loss(model, "grad")
    if args.resolved and steps > MAX_RESOLVED_STEPS:
        raise LimitError(
            f"--resolved writes gradients for at most {MAX_RESOLVED_STEPS} steps, got {steps:,}; "
            "use fewer steps, or drop --resolved for the linear-size BPTT chain"
        )
    if args.latex and steps > MAX_LATEX_STEPS:
        raise LimitError(
            f"--latex prints at most {MAX_LATEX_STEPS} steps, got {steps:,}; use fewer steps"
        )
    wrt = _wrt(model, args.wrt)
    U = unfold(model.recurrence, steps)
    total = model.total_loss(U)
    B = bptt(U, total, wrt)
    targets = {Adjoint(v) for v in B.wrt}
    chain = [e for e in B.adjoints if e.lhs not in targets]
    by_lhs = {e.lhs: e for e in (*B.adjoints, *B.gradients)}
    if args.resolved:
        values = grad(U, total, list(B.wrt))
        gradient = [(Adjoint(v), values[v]) for v in B.wrt]
    else:
        gradient = [
            (Adjoint(v), by_lhs[Adjoint(v)].rhs if Adjoint(v) in by_lhs else sp.S.Zero)
            for v in B.wrt
        ]
    if args.latex:
        rows = [f"L &= {latex_expr(total)}"]
        if not args.resolved:
            rows += [f"{latex_expr(e.lhs)} &= {latex_expr(e.rhs)}" for e in chain]
        rows += [f"{latex_expr(a)} &= {latex_expr(b)}" for a, b in gradient]
        _out(_aligned(rows))
        return EXIT_OK
    _out(f"L = {_describe_loss(model, U, total)}")
    if not args.resolved:
        _out("")
        _out("BPTT, last step first:")
        for e in chain:
            _out(_eq_line(e.lhs, e.rhs))
    _out("")
    _out("Gradient:" if args.resolved else "Gradient (in the adjoints above):")
    for a, b in gradient:
        _out(_eq_line(a, b))
    return EXIT_OK


def _matrix_grad(args: Any, model: Model) -> int:
    """``symrnn grad --matrix``: the adjoint recursion with whole vectors and matrices."""
    from .matrices import VectorAt
    from .matrix_form import matrix_bptt
    from .notation import time_atoms

    for given, option in ((args.wrt, "--wrt"), (args.resolved, "--resolved")):
        if given:
            raise ParseError(
                f"{option} applies to the chain of scalar components; add --components, or drop "
                f"{option} for the matrix form"
            )
    if not model.is_vector:
        raise ParseError(
            "--matrix needs a vector model (vectors and matrices, or --cell); this model is "
            "scalar: drop --matrix"
        )
    rec = model.recurrence
    loss_on = None
    if model.loss is not None:
        # The vectors the loss reads: whole (o(t) inside a loss object) or by component (o_1).
        read = {a.name for a in model.loss.atoms(VectorAt)}
        read |= {a.func.__name__.rsplit("_", 1)[0] for a in time_atoms(model.loss)}
        defined = [eq.lhs.name for eq in rec.display if isinstance(eq.lhs, VectorAt)]
        loss_on = [name for name in defined if name in read] or None
    try:
        M = matrix_bptt(rec, loss_on=loss_on)
    except SymrnnError as exc:
        raise type(exc)(f"{exc}; or add --components for the chain of components") from exc
    if args.latex:
        _out(M.latex())
        return EXIT_OK
    if model.loss is not None:
        _out(f"L = sum over t = 1..tau of L(t), L(t) = {str_expr(model.loss)}")
        _out("")
    _out("BPTT in matrix form (Goodfellow et al. eq. 10.18-10.28), templates in t:")
    _out(str(M))
    return EXIT_OK


def _describe_loss(model: Model, U: Any, total: sp.Expr) -> str:
    if model.per_step and U.steps > 3:
        return f"sum over t = 1..{U.steps} of {str_expr(model.loss)}"
    return str_expr(total)


def _cmd_check(args: Any) -> int:
    model = _model(args)
    steps = _steps(args, model, MAX_CHECK_STEPS, "check", default=5)
    verify = _api("verify", "verify")
    ranges = {name: (value, value) for name, value in model.given_values().items()} or None
    rec = model.recurrence_with_loss_params()
    report = verify(rec, steps=steps, loss=model.loss, seed=args.seed, ranges=ranges)
    if args.json:
        _out(json.dumps(report.to_dict(), indent=2, allow_nan=False))
    elif not report.compared:
        why = report.rows[0].detail if report.rows else "no check applies"
        _out(f"NOTHING COMPARED: every check was skipped ({why})")
    else:
        _out(str(report))
    return EXIT_OK if report.ok else EXIT_FAILED


def _cmd_latex(args: Any) -> int:
    model = _model(args)
    steps = _steps(args, model, MAX_LATEX_STEPS, "latex")
    output = _output(args.output, _LATEX_SUFFIXES, "latex")
    markdown = output is not None and output.suffix.lower() == ".md"
    if args.pdf and (output is None or markdown):
        raise ParseError(
            "--pdf needs -o FILE.tex: the PDF is written next to it, e.g. -o notes.tex --pdf"
        )
    if output is not None:
        _check_target(output)
        if args.pdf:
            _check_target(output.with_suffix(".pdf"))
    pdflatex = _pdflatex() if args.pdf else None
    derivation = _api("derivation", "latex")
    D = derivation(model.recurrence, steps=steps, loss=model.loss, figures=args.figures)
    if markdown:
        text = D.to_markdown()
    else:
        text = D.to_latex(document=bool(args.document or args.pdf))
    if output is None:
        sys.stdout.write(text)
        return EXIT_OK
    pdf = _compile_pdf(pdflatex, text, output.stem) if pdflatex else None
    if pdf is not None:
        target = output.with_suffix(".pdf")
        _check_target(target)
        write_all([(output, text), (target, pdf)])  # both or neither
        _out(f"wrote {output} and {target}")
    else:
        _write(output, text)
        _out(f"wrote {output}")
    return EXIT_OK


def _pdflatex() -> str:
    found = shutil.which("pdflatex")
    if found is None:
        raise ToolMissing(
            "pdflatex is not installed, so --pdf cannot make a PDF; install TeX Live "
            "(Debian/Ubuntu: apt-get install texlive-latex-base) or drop --pdf and compile the "
            ".tex file elsewhere"
        )
    return found


def _compile_pdf(pdflatex: str, tex: str, stem: str) -> bytes:
    """Compile ``tex`` with pdflatex in a temporary folder; return the PDF's bytes."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) or "notes"
    with tempfile.TemporaryDirectory(prefix="symrnn-pdf-") as folder:
        source = Path(folder) / f"{stem}.tex"
        source.write_text(tex, encoding="utf-8")
        command = [
            pdflatex,
            "-interaction=nonstopmode",
            "-halt-on-error",
            "-no-shell-escape",
            source.name,
        ]
        try:
            done = subprocess.run(
                command, cwd=folder, capture_output=True, timeout=180, check=False
            )
        except subprocess.TimeoutExpired:
            raise SymrnnError(
                "pdflatex took more than 180 s and was stopped; compile the .tex file yourself"
            ) from None
        pdf = Path(folder) / f"{stem}.pdf"
        if done.returncode != 0 or not pdf.exists():
            log = done.stdout.decode("utf-8", "replace").splitlines()
            first = next((line for line in log if line.startswith("!")), "no message")
            raise SymrnnError(
                f"pdflatex failed ({first.strip()}); rerun without --pdf to get the .tex file "
                "and compile it to see the full log"
            )
        return pdf.read_bytes()


def _cmd_graph(args: Any) -> int:
    model = _model(args)
    output = _output(args.output, None, "graph")
    suffix = output.suffix.lower() if output is not None else ".dot"
    if suffix not in _GRAPH_SUFFIXES:
        raise ParseError(
            f"-o {_quote(str(output))} has the unknown suffix {_quote(suffix)}; use one of "
            f"{', '.join(_GRAPH_SUFFIXES)}"
        )
    if output is not None:
        _check_target(output)
    if args.dpi is not None and not 10 <= args.dpi <= 2400:
        raise ParseError(f"--dpi {args.dpi} is out of range; give a resolution from 10 to 2400")
    draw = _api("graph", "graph")
    loss = model.loss
    if args.bptt is not None and loss is None:
        raise ParseError(
            "graph --bptt needs a loss: give --loss '(o(t) - y(t))**2/2' (or loss = ... in the "
            "model file)"
        )
    if args.unfold is not None or args.bptt is not None:
        from .unfold import unfold

        option = "--bptt" if args.bptt is not None else "--unfold"
        given = (args.bptt if args.bptt is not None else args.unfold) or None
        steps = given if given is not None else model.steps
        if steps is None:
            raise ParseError(
                f"graph {option} needs the number of steps: give {option} N (or steps = N in the "
                "model file)"
            )
        if steps > MAX_GRAPH_STEPS:
            raise LimitError(
                f"graph {option} draws at most {MAX_GRAPH_STEPS} steps, got {steps:,}; use fewer "
                "steps"
            )
        U = unfold(model.recurrence_with_loss_params(), steps)
        if args.bptt is not None:
            from .diff import bptt, total_loss

            g = draw(bptt(U, total_loss(U, loss)))
        else:
            g = draw(U, loss=loss) if loss is not None else draw(U)
    else:
        g = draw(model.recurrence, loss=loss) if loss is not None else draw(model.recurrence)
    if output is None:
        sys.stdout.write(g.to_dot())
        return EXIT_OK
    if suffix == ".dot":
        _write(output, g.to_dot())
    else:
        g.render(output, dpi=args.dpi)
    _out(f"wrote {output}")
    return EXIT_OK


def _cmd_codegen(args: Any) -> int:
    model = _model(args)
    steps: int | None = None
    if args.mode == "unrolled":
        steps = _steps(args, model, MAX_UNROLLED_STEPS, "codegen --mode unrolled")
    elif args.steps is not None:
        steps = _steps(args, model, MAX_STEPS, "codegen")
    output = _output(args.output, (".py",), "codegen")
    if output is not None:
        _check_target(output)
    generate_source = _api("generate_source", "numeric")
    source = generate_source(model.recurrence_with_loss_params(), model.loss, args.mode, steps)
    if model.params:
        source += (
            "\n\n# Parameter values from the model file: an example to call the functions with.\n"
            f"EXAMPLE_PARAMS = { {identifier(str(k)): v for k, v in model.params.items()}!r}\n"
        )
    if args.with_params:
        source += _params_source(model, args.seed)
    if output is None:
        sys.stdout.write(source)
        return EXIT_OK
    _write(output, source)
    _out(f"wrote {output} ({args.mode} mode)")
    return EXIT_OK


def _params_source(model: Model, seed: int) -> str:
    """``PARAM_VALUES = {...}``: every parameter's value as a NumPy array, exact (float repr)."""
    values = model.parameter_values(seed)
    given = set(model.params) | set(model.weights)
    drawn = [name for name in values if name not in given]
    lines = ["", "", "# Parameter values from the model (params_file and [params])."]
    if drawn:
        lines.append(f"# Drawn uniformly from [-1, 1] with seed {seed}: {', '.join(drawn)}.")
    lines.append("PARAM_VALUES = {")
    for name, array in values.items():
        # A column parameter (a bias) as a vector (n,), as generated code takes it.
        flat = array[:, 0] if array.ndim == 2 and array.shape[1] == 1 else array
        lines.append(f"    {name!r}: numpy.array({flat.tolist()!r}),")
    lines.append("}")
    return "\n".join(lines) + "\n"


# =================================================================================== demo
def _cmd_demo(args: Any) -> int:
    """The whole pipeline on the lecture's examples; each optional part degrades to a note."""
    folder = Path(args.output)
    if folder.exists() and not folder.is_dir():
        raise SymrnnError(f"{_quote(str(folder))} is a file, not a folder; give a folder with -o")
    folder.mkdir(parents=True, exist_ok=True)
    try:  # every part of the demo writes here: find out now, not as a list of skipped parts
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise SymrnnError(
            f"cannot write into the folder {_quote(str(folder))} ({exc.strerror}); give a "
            "writable folder with -o"
        ) from None
    demo = _Demo(folder, debug=bool(getattr(args, "debug", False)))
    demo.run()
    if not demo.written:
        raise SymrnnError(f"the demo wrote nothing to {_quote(str(folder))}: {demo.skipped[0]}")
    return EXIT_OK


class _Demo:
    def __init__(self, folder: Path, debug: bool) -> None:
        self.folder = folder
        self.debug = debug
        self.written: list[str] = []
        self.skipped: list[str] = []

    def attempt(self, what: str, action: Callable[[], Any]) -> Any:
        """Run one optional part; on failure note 'skipped: ...' instead of stopping."""
        try:
            return action()
        except ToolMissing as exc:
            self.skipped.append(f"skipped: {what}: {_tool_reason(exc)}")
        except Exception as exc:  # an optional part never stops the demo; --debug shows why
            if self.debug:
                traceback.print_exc()
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            self.skipped.append(f"skipped: {what} ({reason})")
        return None

    def write(self, name: str, data: str | bytes) -> None:
        _write(self.folder / name, data)
        self.written.append(name)

    def run(self) -> None:
        import symrnn as sr

        from .diff import bptt, grad, total_loss
        from .losses import expand_losses
        from .notation import time_function
        from .unfold import unfold

        auto, driven, rnn = sr.cells.autonomous(), sr.cells.driven(), sr.cells.rnn()
        elman = sr.cells.elman(2, outputs=1)
        y = time_function("y")
        h = rnn.states[0]
        rnn_loss = (h(t) - y(t)) ** 2 / 2
        elman_loss = sr.squared_error(sr.vector("o", 1)(t), sr.vector("y", 1)(t))

        _out("symrnn demo: the lecture's examples, unfolded, differentiated and checked")
        _out("")
        for label, rec in (("Example 1", auto), ("Example 2", driven)):
            U = unfold(rec, 3)
            s = rec.states[0]
            _out(f"{label} ({rec.name}): {_lecture(s(t))} = {_lecture(rec.update[s])}")
            _out(
                f"  {_lecture(s(3))} = {_lecture(U.nested(3, levels=1))} = "
                f"{_lecture(U.nested(3, levels=2))}"
            )
        U = unfold(rnn, 3)
        inputs = ", ".join(_lecture(rnn.inputs[0](k)) for k in (3, 2, 1))
        _out(f"The RNN ({rnn.name}): {_lecture(h(t))} = {_lecture(rnn.update[h])}")
        _out(f"  {_lecture(h(3))} = g^{{(3)}}({inputs}) = {_lecture(U.closed_form(3))}")
        _out("")

        total = total_loss(U, rnn_loss)
        _out(f"Gradient of L = sum over t = 1..3 of {str_expr(rnn_loss)} for the RNN:")
        for p, value in grad(U, total).items():
            _out(f"  dL/d{p} = {str_expr(value)}")
        _out("BPTT equations of the RNN (symbolic t, tau steps):")
        for eq in bptt(U, total).template():
            _out(f"  {_eq_line(eq.lhs, _with_loss(eq.rhs, rnn_loss))}")
        UE = unfold(elman, 3)
        template = bptt(UE, total_loss(UE, elman_loss)).template()
        adjoints = [eq for eq in template if is_time_atom(eq.lhs.args[0])]
        written = "; ".join(_eq_line(e.lhs, e.rhs) for e in elman.display)
        _out(f"BPTT equations of a vector Elman RNN (2 units, 1 output), {written}:")
        for eq in adjoints:
            _out(f"  {_eq_line(eq.lhs, _with_loss(eq.rhs, expand_losses(elman_loss)))}")
        _out(f"  ... and {len(template) - len(adjoints)} parameter gradients (in elman.tex)")
        _out("")

        examples = [
            ("autonomous", auto, None),
            ("driven", driven, None),
            ("rnn", rnn, rnn_loss),
            ("elman", elman, elman_loss),
        ]
        self.attempt("LaTeX notes", lambda: self.notes(examples))
        self.attempt("drawings", lambda: self.drawings(rnn))
        self.attempt("NumPy code", lambda: self.code(rnn, rnn_loss))

        _out(f"Files written to {self.folder}:")
        for name in self.written:
            _out(f"  {name}")
        for note in self.skipped:
            _out(f"  {note}")
        _out("")
        reports = self.attempt(
            "verification",
            lambda: [
                _api("verify", "verify")(rec, steps=3, loss=loss, seed=0)
                for _, rec, loss in examples
                if rec not in (auto, driven)
            ],
        )
        if self.skipped and reports is None:
            _out(self.skipped[-1])
        if reports:
            _out("Verification (every form against the others, float64, seed 0); Examples 1")
            _out("and 2 use an abstract f, which has no numeric value to check:")
            for report in reports:
                _out("")
                _out(str(report))

    def notes(self, examples: list[tuple[str, Any, Any]]) -> None:
        derivation = _api("derivation", "latex")
        bodies = []
        preamble = ""
        figures = shutil.which("dot") is not None  # the graphs as TikZ figures, where drawn
        for name, rec, loss in examples:
            D = derivation(rec, steps=3, loss=loss, figures=figures)
            self.write(f"{name}.tex", D.to_latex())
            document = D.to_latex(document=True)
            preamble = document.split("\\begin{document}")[0]
            bodies.append(f"\\section*{{{_tex_escape(D.title)}}}\n\n{D.to_latex()}")
        notes = (
            f"{preamble}\\begin{{document}}\n\n"
            + "\n\\clearpage\n".join(bodies)
            + "\n\\end{document}\n"
        )
        self.write("notes.tex", notes)
        self.attempt("PDF", lambda: self.pdf(notes))

    def pdf(self, notes: str) -> None:
        self.write("notes.pdf", _compile_pdf(_pdflatex(), notes, "notes"))

    def drawings(self, rnn: Any) -> None:
        from .unfold import unfold

        graph = _api("graph", "graph")
        drawn = [
            (name, graph(obj))
            for name, obj in (("rnn_folded", rnn), ("rnn_unfolded", unfold(rnn, 3)))
        ]
        for name, g in drawn:
            self.write(f"{name}.dot", g.to_dot())
        for name, g in drawn:
            if self.attempt("SVG drawings", functools.partial(self.render, g, name)) is None:
                break

    def render(self, g: Any, name: str) -> bool:
        g.render(self.folder / f"{name}.svg")
        self.written.append(f"{name}.svg")
        return True

    def code(self, rnn: Any, loss: Any) -> None:
        generate_source = _api("generate_source", "numeric")
        self.write("rnn_numpy.py", generate_source(rnn, loss, "scan", None))


def _with_loss(expr: Any, per_step: Any) -> Any:
    """Replace the generic dL(t)/dq(t) of a BPTT template by the derivative of ``per_step``."""
    return expr.replace(
        lambda e: isinstance(e, sp.Derivative) and getattr(e.expr.func, "__name__", "") == "L",
        lambda e: sp.diff(per_step, e.variables[0]),
    )


def _tool_reason(exc: ToolMissing) -> str:
    text = str(exc)
    if "pdflatex" in text:
        return "pdflatex not installed"
    if "dot" in text or "Graphviz" in text:
        return "Graphviz not installed"
    return " ".join(text.split())[:120]


def _tex_escape(text: str) -> str:
    return "".join("\\" + c if c in "&%$#_{}" else c for c in text)
