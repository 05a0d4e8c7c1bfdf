r"""LaTeX for symrnn objects, and whole derivations written as lecture notes.

:func:`latex` prints any symrnn object in the book's notation (through
:func:`symrnn.notation.latex_expr`, the one source of notation); :func:`derivation` collects the
mathematics of one recurrence, from the recurrence to the verification table, and writes it as
a LaTeX fragment, a complete document that compiles with ``pdflatex`` using only ``amsmath`` and
``amssymb``, or Markdown with ``$$…$$`` blocks.

Long equations are broken across lines by the printed structure: at top-level ``+``, ``-`` and
``,``, and, for a single long factor, inside its widest parenthesis (``\left(`` becomes
``\bigl(`` so that the group may span lines).  Widths are estimated in points for 10 pt Computer
Modern, so a line of a document fits the page.

This module only reads the objects it prints; nothing in the computing core imports it.

>>> import symrnn as sr
>>> U = sr.unfold(sr.cells.autonomous(), 3)
>>> print(latex(U, step=3))
s^{(3)} = f(s^{(2)}; \theta) = f(f(s^{(1)}; \theta); \theta)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef

from .errors import SymrnnError
from .files import write_atomic
from .losses import expand_losses
from .matrices import VectorAt, explicit, is_matrix
from .notation import (
    is_time_atom,
    latex_bold,
    latex_char,
    latex_expr,
    latex_time,
    shift_of,
    t,
    time_atoms,
    time_of,
)
from .parsing import parse_in_scope
from .recurrence import Recurrence
from .unfold import Unfolded

__all__ = [
    "latex",
    "derivation",
    "Derivation",
    "Section",
    "Paragraph",
    "Display",
    "Table",
    "Figure",
    "break_latex",
    "latex_width",
    "LINE_WIDTH",
    "ARTICLE_WIDTH",
    "estimated_chars",
    "equation_chain",
    "natural_order",
]

#: Width in points that a displayed row may take (A4, 2 cm margins, 10 pt: text width 481 pt).
LINE_WIDTH = 440.0
#: Default width of :func:`latex`: a standard ``article``'s text width (345 pt) less a margin for
#: the estimate's error, so that a result pasted into ``\[ … \]`` fits.
ARTICLE_WIDTH = 320.0
#: A closed form longer than this (characters of LaTeX) is described instead of printed.
MAX_DISPLAY_CHARS = 2500
#: Closed forms g^{(t)} are printed for t = 1 … min(steps, CLOSED_FORM_STEPS).
CLOSED_FORM_STEPS = 3
#: Rows of the unfolded chain printed before the rest is elided with \vdots.
CHAIN_ROWS = 12

_QUAD = 10.0  # \quad at 10 pt
_TAU = sp.Symbol("tau", integer=True, positive=True)
_PER_STEP_LOSS = sp.Function("L", real=True)  # L(t) prints as L^{(t)}, as in BPTT.template()


# =============================================================================== widths
# Approximate advance widths (pt) of 10 pt Computer Modern math, enough to keep lines on a page.
_LOWER, _UPPER, _DIGIT = 5.3, 7.4, 5.0
_BIN, _REL = 7.8 + 4.4, 7.8 + 5.6  # operator plus its medium / thick spaces
_NAMED = {  # upright operator names: letters plus a thin space
    name: 5.0 * len(name) + 1.7
    for name in (
        "tanh sinh cosh sin cos tan log ln exp max min det lim sup inf arg sec csc cot "
        "arcsin arccos arctan sgn"
    ).split()
}
_SYMBOLS = {
    "partial": 5.7,
    "nabla": 8.3,
    "infty": 10.0,
    "dots": 13.4,
    "ldots": 13.4,
    "cdots": 13.4,
    "vdots": 3.0,
    "quad": 10.0,
    "qquad": 20.0,
    ",": 1.7,
    ":": 2.2,
    ";": 2.8,
    "!": -1.7,
    " ": 3.3,
    "{": 5.0,
    "}": 5.0,
    "_": 3.5,
    "%": 8.3,
    "&": 7.8,
    "#": 8.3,
    "$": 5.0,
    "ell": 4.2,
}
_BINOPS = {"cdot", "times", "odot", "circ", "otimes", "oplus", "pm", "mp", "ast", "star", "wedge"}
_RELATIONS = {"leq", "geq", "neq", "approx", "equiv", "to", "mapsto", "le", "ge", "sim", "in"}
_SIZED = {"bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "big", "Big", "left", "right", "middle"}
_TEXTLIKE = {
    "mathbf",
    "mathrm",
    "operatorname",
    "text",
    "mathit",
    "boldsymbol",
    "mathcal",
    "mathbb",
    "texttt",
    "textrm",
    "mathsf",
    "textbf",
}
_GREEK_UPPER = {"Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon", "Phi", "Psi"}
_COMMAND = re.compile(r"\\([A-Za-z]+|.)")


def _read_group(s: str, i: int) -> tuple[str, int]:
    """The argument starting at ``s[i]`` (spaces skipped): a ``{…}`` group, command or char."""
    n = len(s)
    while i < n and s[i] == " ":
        i += 1
    if i >= n:
        return "", i
    if s[i] == "{":
        depth, j = 0, i
        while j < n:
            if s[j] == "\\":
                j += 2
                continue
            if s[j] == "{":
                depth += 1
            elif s[j] == "}":
                depth -= 1
                if depth == 0:
                    return s[i + 1 : j], j + 1
            j += 1
        return s[i + 1 :], n
    if s[i] == "\\":
        m = _COMMAND.match(s, i)
        assert m is not None
        return m.group(0), m.end()
    return s[i], i + 1


def _bold_letter(ch: str) -> float:
    """Advance width (pt) of a bold Computer Modern letter: capitals are wide (W is 11.9)."""
    if ch == " ":
        return 3.3
    if ch in "WM":
        return 11.9
    if ch.isupper():
        return 8.8
    return 8.4 if ch in "mw" else 6.2


def latex_width(tex: str, scale: float = 1.0) -> float:
    r"""Estimated width in points of display-style math ``tex`` at 10 pt.

    Within about 10 % of what TeX sets for the formulas symrnn prints; used to break lines.

    >>> round(latex_width(r"h^{(t)}"))
    16
    """
    total, i, n = 0.0, 0, len(tex)
    script = 0.0  # width of the previous script, so that stacked ^ and _ do not add up
    while i < n:
        c = tex[i]
        if c in "^_":
            arg, i = _read_group(tex, i + 1)
            w = latex_width(arg, max(scale * 0.75, 0.55)) + 0.5  # \scriptspace
            total += max(0.0, w - script)
            script = max(script, w)
            continue
        script = 0.0
        if c == "\\":
            m = _COMMAND.match(tex, i)
            assert m is not None
            name, i = m.group(1), m.end()
            if name in ("frac", "dfrac", "tfrac", "binom"):
                num, i = _read_group(tex, i)
                den, i = _read_group(tex, i)
                inner = scale if scale >= 1 else max(scale * 0.8, 0.5)
                total += max(latex_width(num, inner), latex_width(den, inner)) + 2.4 * scale
            elif name == "sqrt":
                arg, i = _read_group(tex, i)
                total += latex_width(arg, scale) + 8.3 * scale
            elif name in _SIZED:
                delim, i = _read_group(tex, i)
                total += 0.0 if delim == "." else 5.5 * scale
            elif name in _TEXTLIKE:
                arg, i = _read_group(tex, i)
                if name in ("mathbf", "boldsymbol", "textbf"):
                    total += sum(_bold_letter(ch) for ch in arg) * scale
                else:
                    total += sum(_DIGIT if ch != " " else 3.3 for ch in arg) * scale
            elif name in ("sum", "prod"):
                lower = upper = ""
                for _ in range(2):
                    j = i
                    while j < n and tex[j] == " ":
                        j += 1
                    if j < n and tex[j] in "_^":
                        arg, i = _read_group(tex, j + 1)
                        lower, upper = (arg, upper) if tex[j] == "_" else (lower, arg)
                small = max(scale * 0.7, 0.5)
                total += (
                    max(14.4 * scale, latex_width(lower, small), latex_width(upper, small))
                    + 1.7 * scale
                )
            elif name in ("begin", "end"):
                _, i = _read_group(tex, i)
            elif name in _NAMED:
                total += _NAMED[name] * scale
            elif name in _BINOPS:
                total += (7.8 + (4.4 if scale >= 1 else 0.0)) * scale
            elif name in _RELATIONS:
                total += (7.8 + (5.6 if scale >= 1 else 0.0)) * scale
            elif name in _SYMBOLS:
                total += _SYMBOLS[name] * scale
            elif name in _GREEK_UPPER:
                total += 7.2 * scale
            else:
                total += 6.0 * scale  # Greek letters and other symbols
            continue
        i += 1
        if c == "{":
            j = i - 1
            arg, i = _read_group(tex, j)
            total += latex_width(arg, scale)
        elif c == " " or c == "&":
            continue
        elif c in "+-*":
            total += (7.8 + (4.4 if scale >= 1 else 0.0)) * scale
        elif c in "=<>":
            total += (7.8 + (5.6 if scale >= 1 else 0.0)) * scale
        elif c in ",;":
            total += (2.8 + 1.7) * scale
        elif c in "()[]":
            total += 3.9 * scale
        elif c in ".|'!":
            total += 2.8 * scale
        elif c == ":":
            total += (2.8 + 5.6) * scale
        elif c.isdigit():
            total += _DIGIT * scale
        elif c.isupper():
            total += _UPPER * scale
        else:
            total += _LOWER * scale
    return total


# ============================================================================ breaking
def _scan(s: str) -> tuple[list[tuple[int, int, str]], list[tuple[int, int, int, int, str]]]:
    """Top-level split points and groups of ``s``.

    Returns ``(splits, groups)``: splits are ``(start, end, kind)`` for `` + ``, `` - ``
    (kind ``"op"``) and ``", "``, ``"; "`` (kind ``","``) outside every group; groups are
    ``(open, inner_start, inner_end, close_end, kind)`` for ``\\left…\\right…`` (``"left"``),
    plain ``(…)`` (``"paren"``) and ``{…}`` (``"brace"``) at the top level.
    """
    splits: list[tuple[int, int, str]] = []
    groups: list[tuple[int, int, int, int, str]] = []
    stack: list[tuple[int, int, str]] = []  # (open, inner_start, kind)
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            m = _COMMAND.match(s, i)
            assert m is not None
            name = m.group(1)
            if name in ("left", "right"):
                _, j = _read_group(s, m.end())
                if name == "left":
                    stack.append((i, j, "left"))
                elif stack and stack[-1][2] == "left":
                    start, inner, _kind = stack.pop()
                    if not stack:
                        groups.append((start, inner, i, j, "left"))
                i = j
                continue
            if name in _SIZED:  # \bigl( etc.: a delimiter token, not a group
                _, i = _read_group(s, m.end())
                continue
            if name == "begin":  # environments (matrices) are atoms: never split inside
                end = s.find("\\end{", i)
                i = n if end < 0 else _read_group(s, end + 4)[1]
                continue
            i = m.end()
            continue
        if c in "{(":
            stack.append((i, i + 1, "brace" if c == "{" else "paren"))
        elif c in "})":
            kind = "brace" if c == "}" else "paren"
            if stack and stack[-1][2] == kind:
                start, inner, _kind = stack.pop()
                if not stack:
                    groups.append((start, inner, i, i + 1, kind))
        elif not stack:
            if c in "+-" and s[i - 1 : i] == " " and s[i + 1 : i + 2] == " " and i > 0:
                splits.append((i - 1, i + 2, "op"))
            elif c in ",;" and s[i + 1 : i + 2] == " ":
                splits.append((i, i + 2, ","))
        i += 1
    return splits, groups


def _segments(s: str) -> list[str]:
    """``s`` cut at its top-level splits: ``["a", "+ b", "- c"]``, ``["f(x,", "y)"]``."""
    splits, _ = _scan(s)
    out, last = [], 0
    for start, end, kind in splits:
        if kind == "op":
            out.append(s[last:start])
            last = start + 1  # keep the operator with the next segment: "+ b"
        else:
            out.append(s[last : start + 1])  # keep the comma with this segment
            last = end
    out.append(s[last:])
    return [seg.strip() for seg in out if seg.strip()]


def _delimiters(inner: str, opening: str, closing: str) -> tuple[str, str]:
    """Fixed-size delimiters for a group that spans lines, about as tall as ``\\left`` makes
    them on one line (so that an outer pair is not smaller than an inner one)."""
    if "\\frac" in inner or "\\sum" in inner:
        size = "\\Bigg"
    elif "^" in inner or "\\left" in inner or "\\bigl" in inner:
        size = "\\Big"
    else:
        size = "\\big"
    return f"{size}l{opening}", f"{size}r{closing}"


def _open_group(s: str, room: float) -> tuple[str, str, str, str] | None:
    """Split ``s`` at the group to break inside: ``(head, inner, close, tail)`` or None.

    That is the first group that does not fit in ``room`` (so the head before it fits), or else
    the widest one.
    """
    _, groups = _scan(s)
    candidates: list[tuple[float, tuple[str, str, str, str]]] = []
    for start, inner_start, inner_end, end, kind in groups:
        inner = s[inner_start:inner_end]
        head, tail = s[:start], s[end:]
        if "\\begin" in inner:
            continue
        if kind == "brace":
            # \tanh{\left(X\right)}: the braces only group; drop them to open the parenthesis
            if head.endswith(("^", "_")) or re.search(r"\\[A-Za-z]*frac\s*(\{[^{}]*\})?\s*$", head):
                continue
            body = inner.strip()
            sub = _scan(body)[1]
            if len(sub) != 1 or sub[0][0] != 0 or sub[0][3] != len(body) or sub[0][4] != "left":
                continue
            _, a, b, e, _k = sub[0]
            opening = body[len("\\left") : a].strip()
            closing = body[b + len("\\right") : e].strip()
            inner = body[a:b]
            left, right = _delimiters(inner, opening, closing)
            candidate = (head + left, inner, right, tail)
        elif kind == "left":
            opening = s[start + len("\\left") : inner_start].strip()
            closing = s[inner_end + len("\\right") : end].strip()
            left, right = _delimiters(inner, opening, closing)
            candidate = (head + left, inner, right, tail)
        else:
            candidate = (head + "(", inner, ")", tail)
        if latex_width(s[:end]) > room:
            return candidate
        candidates.append((latex_width(inner), candidate))
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0])[1]


_MAX_INDENT = 4  # nesting levels shown by indentation; deeper levels stay at this indent


def _indent(level: int) -> float:
    return min(level, _MAX_INDENT) * _QUAD


def _break(s: str, first: float, rest: float, depth: int) -> list[tuple[int, str]]:
    """Lines ``(indent level, text)`` for ``s``: the first at most ``first`` wide, the others
    ``rest`` less their indentation; text runs over only where nothing is left to split."""
    s = s.strip()
    if latex_width(s) <= first:
        return [(depth, s)]
    segments = _segments(s)
    if len(segments) == 1:
        return _break_factor(s, first, rest, depth)
    lines: list[tuple[int, str]] = []
    current = ""
    width_rest = rest - _indent(depth)

    def place(seg: str, room: float, prefix: str, sub: list[tuple[int, str]] | None = None) -> str:
        sub = sub if sub is not None else _break(seg, room, rest, depth)
        sub[0] = (sub[0][0], prefix + sub[0][1])
        if sub[-1][0] == depth:
            lines.extend(sub[:-1])
            return sub[-1][1]
        lines.extend(sub)
        return ""

    for seg in segments:
        avail = first if not lines else width_rest
        w = latex_width(seg)
        if current:
            left = avail - latex_width(current) - 3.3
            if w <= left:
                current += " " + seg
                continue
            if w > width_rest and left >= 0.35 * avail:
                sub = _break(seg, left, rest, depth)
                if latex_width(sub[0][1]) <= left:  # its first piece fits: start it here
                    current = place(seg, left, current + " ", sub)
                    continue
            lines.append((depth, current))
            current, avail = "", width_rest
        current = seg if w <= avail else place(seg, avail, "")
    if current:
        lines.append((depth, current))
    return lines


def _break_factor(s: str, first: float, rest: float, depth: int) -> list[tuple[int, str]]:
    """Break a product or function call: open one of its groups across lines."""
    opened = _open_group(s, first)
    if opened is None:
        return [(depth, s)]
    head, inner, close, tail = opened
    # every line of the group keeps room for the closing delimiter, which ends one of them
    shut = latex_width(close)
    inner_lines = _break(inner, first - latex_width(head) - shut, rest - shut, depth + 1)
    lines = [(depth, head + inner_lines[0][1]), *inner_lines[1:]]
    level, last = lines[-1]
    room = rest - _indent(level)
    if not tail.strip() or latex_width(last + close + tail) <= room:
        lines[-1] = (level, last + close + tail)
        return lines
    # the rest continues on the next line: a product's next factor marked with \cdot, the rest
    # of an argument list (", x; \theta)") as it is
    tail = tail.lstrip()
    punctuation = tail[0] if tail[0] in ",;" else ""  # ends this line, as in running text
    lines[-1] = (level, last + close + punctuation)
    tail = tail[len(punctuation) :].lstrip()
    if not tail:
        return lines
    marker = "" if punctuation or tail.startswith((")", "\\right", "\\big")) else "\\cdot "
    more = _break(tail, rest - _indent(depth) - (7.2 if marker else 0.0), rest, depth)
    more[0] = (more[0][0], marker + more[0][1])
    return lines + more


def break_latex(tex: str, width: float = LINE_WIDTH, first: float | None = None) -> list[str]:
    r"""Break LaTeX math ``tex`` into lines of at most ``width`` points (estimated).

    Lines after the first start with the operator they continue with (``{} + …``) and are
    indented by ``\quad`` per level of nesting; join them with ``\\`` inside ``aligned``.
    Parentheses that span lines are ``\bigl(…\bigr)``.  ``first`` is the room on the first line
    (default ``width``).

    >>> break_latex("a + b + c", width=30)
    ['a + b', '\\quad {}+ c']
    """
    lines = _break(tex, width if first is None else first, width - _QUAD, 0)
    out = []
    for k, (level, text) in enumerate(lines):
        if k == 0:
            out.append(text)
            continue
        if text[:2] in ("+ ", "- "):
            text = "{}" + text
        out.append("\\quad " * (min(level, _MAX_INDENT) + 1) + text)
    return out


def _aligned(rows: Sequence[str]) -> str:
    return "\\begin{aligned}" + " \\\\ ".join(rows) + "\\end{aligned}"


def _split_row(row: str) -> tuple[str, str, str]:
    r"""``"h^{(1)} &:= rhs"`` -> ``("h^{(1)}", ":=", "rhs")``; without ``&`` all is rhs."""
    if "&" not in row:
        return "", "", row.strip()
    lhs, _, rest = row.partition("&")
    rest = rest.strip()
    for rel in (":=", "="):
        if rest.startswith(rel):
            return lhs.strip(), rel, rest[len(rel) :].strip()
    return lhs.strip(), "", rest


def _rows(equations: Sequence[tuple[str, str, Sequence[str]]], width: float | None) -> list[str]:
    r"""Aligned rows for equations ``(lhs, relation, [rhs, rhs, …])``: ``lhs = a = b = …``.

    With ``width``, the pieces are packed into rows that fit and long pieces are broken; without,
    each equation is one row.
    """
    if width is None:
        out = []
        for lhs, rel, pieces in equations:
            rhs = f" {rel} ".join(pieces)
            out.append(f"{lhs} &{rel} {rhs}" if rel else f"{lhs} & {rhs}")
        return out
    lhs_width = max((latex_width(lhs) for lhs, _, _ in equations), default=0.0)
    out = []
    for lhs, rel, pieces in equations:
        gap = _REL if rel else 0.0
        room = width - lhs_width - gap
        current = f"{lhs} &{rel}" if rel else f"{lhs} &"
        used = -gap  # the first piece on a row needs no relation before it
        for piece in pieces:
            w = latex_width(piece)
            left = room - used - gap
            joiner = f" {rel} " if used > -gap and rel else " "
            if w <= left:
                current += joiner + piece
                used += gap + w
                continue
            if used > -gap and not (w > room and left >= 0.5 * room):
                out.append(current)  # the piece starts a row of its own
                current, used, left, joiner = f"&{rel}", -gap, room, " "
            lines = break_latex(piece, room, first=left)
            current += joiner + lines[0]
            for line in lines[1:]:
                out.append(current)
                current = f"& {line}"
            used = room  # a broken piece ends its row
        out.append(current)
    return out


# =============================================================================== notation
def _bold(name: str) -> str:
    return latex_bold(name)


def _groups(rec: Recurrence, funcs: Iterable[Any]) -> list[tuple[str, tuple[Any, ...], bool]]:
    """``funcs`` grouped as the user wrote them: ``(name, components, is_vector)``."""
    owner = {f: name for name, comps in rec.vectors.items() for f in comps}
    out: list[tuple[str, tuple[Any, ...], bool]] = []
    seen: set[str] = set()
    for f in funcs:
        name = owner.get(f)
        if name is None:
            out.append((f.__name__, (f,), False))
        elif name not in seen:
            seen.add(name)
            out.append((name, tuple(rec.vectors[name]), True))
    return out


def _group_at(name: str, comps: tuple[Any, ...], vector: bool, time: Any) -> str:
    # a vector prints as its name and time whatever its size (one component stands in for n)
    return latex_expr(VectorAt(name, time, len(comps)) if vector else comps[0](time))


def _quantity_groups(rec: Recurrence, role: str) -> list[tuple[str, tuple[Any, ...], bool]]:
    """The ``role`` quantities (``"states"``, ``"inputs"``, ``"outputs"``, ``"intermediates"``)
    grouped as written: ``(name, components, is_vector)``.  At symbolic sizes there are no
    components; a vector is then its own single stand-in ``(name, (h,), True)``."""
    if rec.has_explicit_size:
        return _groups(rec, getattr(rec, role))
    blocks = rec.blocks
    return [(f.__name__, (f,), blocks.vector(f) is not None) for f in getattr(blocks, role)]


def _block_name(atom: Any) -> str:
    return atom.name if isinstance(atom, VectorAt) else atom.func.__name__


def _block_atoms(expr: Any) -> list[Any]:
    """The quantities at some time that a matrix-level expression reads: vectors and scalars."""
    return [*expr.atoms(VectorAt), *time_atoms(expr)]


def _block_time(atom: Any) -> Any:
    return atom.time if isinstance(atom, VectorAt) else time_of(atom)


def _group_symbol(name: str, comps: tuple[Any, ...], vector: bool) -> str:
    return _bold(name) if vector else latex_expr(sp.Symbol(name))


def _is_abstract(rec: Recurrence) -> bool:
    """True when an update calls an undefined function, as the lecture's ``f(s(t-1); θ)``."""
    return any(
        not is_time_atom(a) for eq in rec.blocks.equations for a in eq.rhs.atoms(AppliedUndef)
    )


def _input_list(items: list[str]) -> str:
    """``x^{(3)}, x^{(2)}, x^{(1)}``; long lists elided as the lecture does."""
    if len(items) > 5:
        items = [*items[:2], "\\dots", *items[-2:]]
    return ", ".join(items)


def _g(label: str, k: Any, inputs: list[str]) -> str:
    head = f"g{label}^{{({latex_time(sp.sympify(k, strict=True))})}}"
    return f"{head}({_input_list(inputs)})" if inputs else head


def _closed_inputs(rec: Recurrence, expr: Any) -> list[str]:
    """Input quantities an expression depends on, latest first, grouped into vectors; with no
    inputs, the initial states it starts from (the arguments of the book's g^{(t)})."""
    groups = _quantity_groups(rec, "inputs")
    if not groups:
        return _initial_arguments(rec)
    if not rec.has_explicit_size:  # a matrix-level expression: its vectors are atoms
        read = {(_block_name(a), int(_block_time(a))) for a in _block_atoms(expr)}
        return [
            _group_at(name, comps, vector, k)
            for name, comps, vector in groups
            for k in sorted((k for n, k in read if n == name), reverse=True)
        ]
    atoms = set()
    for e in explicit(expr) if is_matrix(expr) else [expr]:
        atoms |= {a for a in time_atoms(e) if a.func in rec.inputs}
    out = []
    for name, comps, vector in groups:
        times = sorted({int(time_of(a)) for a in atoms if a.func in comps}, reverse=True)
        out += [_group_at(name, comps, vector, k) for k in times]
    return out


# ============================================================== the lecture's unfolding
def _state_groups(rec: Recurrence) -> list[tuple[str, tuple[Any, ...], bool]]:
    return _quantity_groups(rec, "states")


def _system_arguments(
    rec: Recurrence, comps: tuple[Any, ...]
) -> list[tuple[str, tuple[Any, ...], bool, int]]:
    """``(name, components, vector, lag)`` of the state and input groups that the step of
    ``comps`` reads, same-time intermediates (gates) followed through: states, then inputs."""
    if not rec.has_explicit_size:
        return _block_arguments(rec, comps[0].__name__)
    groups = {f: g for g in _groups(rec, (*rec.states, *rec.inputs)) for f in g[1]}
    used: dict[tuple[str, int], tuple[str, tuple[Any, ...], bool, int]] = {}
    todo, seen = list(comps), set(comps)
    while todo:
        for atom in time_atoms(rec.update[todo.pop()]):
            lag = -int(shift_of(atom))  # type: ignore[arg-type]
            if atom.func in rec.update and lag == 0:
                if atom.func not in seen:
                    seen.add(atom.func)
                    todo.append(atom.func)
                continue
            group = groups.get(atom.func)
            if group is not None:
                used[(group[0], lag)] = (*group, lag)
    ordered = sorted(used.values(), key=lambda v: (v[1][0] in rec.inputs, v[3], v[0]))
    return ordered


def _block_arguments(rec: Recurrence, name: str) -> list[tuple[str, tuple[Any, ...], bool, int]]:
    """:func:`_system_arguments` at matrix level (symbolic sizes), from the block equations."""
    rhs = {_block_name(eq.lhs): eq.rhs for eq in rec.blocks.equations}
    states, inputs = _quantity_groups(rec, "states"), _quantity_groups(rec, "inputs")
    groups = {g[0]: g for g in (*states, *inputs)}
    used: dict[tuple[str, int], tuple[str, tuple[Any, ...], bool, int]] = {}
    todo, seen = [name], {name}
    while todo:
        for atom in _block_atoms(rhs[todo.pop()]):
            source, lag = _block_name(atom), -int(sp.expand(_block_time(atom) - t))
            if source in rhs and lag == 0:
                if source not in seen:
                    seen.add(source)
                    todo.append(source)
                continue
            if source in groups:
                used[(source, lag)] = (*groups[source], lag)
    is_input = {g[0] for g in inputs}
    return sorted(used.values(), key=lambda v: (v[0] in is_input, v[3], v[0]))


def _block_closed_form(U: Unfolded, name: str, k: int) -> Any:
    """The matrix-level closed form of vector ``name`` at step ``k``: the block chain
    substituted into itself (symbolic sizes)."""
    value: dict[Any, Any] = {}
    for eq in U.blocks:
        if int(_block_time(eq.lhs)) > k:
            break
        value[eq.lhs] = eq.rhs.xreplace(value)
    return next(v for lhs, v in value.items() if _block_name(lhs) == name and _block_time(lhs) == k)


def _label(rec: Recurrence, name: str) -> str:
    """Subscript naming a state group, needed only when there are several."""
    return "" if len(_state_groups(rec)) == 1 else f"_{{{latex_expr(sp.Symbol(name))}}}"


def _system_call(
    rec: Recurrence, group: tuple[str, tuple[Any, ...], bool], time: Any, levels: int
) -> str:
    r"""``f(\mathbf{h}^{(k-1)}, \mathbf{x}^{(k)}; \theta)``: the whole step as one function f.

    With ``levels=2`` the previous state is written through f too (order-1, one state group).
    """
    name = f"f{_label(rec, group[0])}"
    params = "; \\theta" if rec.blocks.params else ""
    args = _system_arguments(rec, group[1])

    def call(now: Any, level: int) -> str:
        parts = []
        for gname, comps, vector, lag in args:
            then = sp.sympify(now - lag, strict=True)
            if level > 1 and gname == group[0] and lag == 1 and not (then.is_Integer and then < 1):
                parts.append(call(then, level - 1))
            else:
                parts.append(_group_at(gname, comps, vector, then))
        return f"{name}({', '.join(parts)}{params})"

    return call(sp.sympify(time, strict=True), levels)


def _initial_arguments(rec: Recurrence) -> list[str]:
    r"""The initial states, ``s^{(0)}`` (and ``s^{(-1)}`` for a second-order recurrence)."""
    return [
        _group_at(name, comps, vector, sp.Integer(-lag))
        for name, comps, vector in _state_groups(rec)
        for lag in range(rec.order)
    ]


def _symbolic_inputs(rec: Recurrence) -> list[str]:
    r"""``x^{(t)}, x^{(t-1)}, \dots, x^{(2)}, x^{(1)}`` for each input, as on the slide; with no
    inputs, the initial states."""
    groups = _quantity_groups(rec, "inputs")
    if not groups:
        return _initial_arguments(rec)
    out = []
    for name, comps, vector in groups:
        times = [t, t - 1, None, sp.Integer(2), sp.Integer(1)]
        out += ["\\dots" if k is None else _group_at(name, comps, vector, k) for k in times]
    return out


def _lecture_forms(
    U: Unfolded, k: Any, group: tuple[str, tuple[Any, ...], bool], closed: bool
) -> tuple[str, list[str]]:
    """The lecture's expansion of one state group at step ``k``: ``(lhs, [forms…])``.

    At an integer step: the state through f (one and two levels, for a scalar state from
    :meth:`Unfolded.nested`), the concrete update, then (``closed``) ``g^{(k)}(…)`` and the closed
    form.  At the symbolic step ``t``: ``g^{(t)}(x^{(t)}, …, x^{(1)})``, f and the update.
    """
    rec = U.recurrence
    name, comps, vector = group
    lhs = _group_at(name, comps, vector, k)
    abstract = _is_abstract(rec)
    if vector:
        eq = next(e for e in rec.display if isinstance(e.lhs, VectorAt) and e.lhs.name == name)
        update = eq.rhs
    else:
        update = rec.update[comps[0]]
    if not isinstance(k, (int, sp.Integer)):
        forms = [_g(_label(rec, name), t, _symbolic_inputs(rec)), _system_call(rec, group, t, 1)]
        return lhs, forms if abstract else [*forms, latex_expr(update)]
    if vector:
        forms = [_system_call(rec, group, k, 1)]
        if k >= 2 and len(_state_groups(rec)) == 1 and rec.order == 1:
            forms.append(_system_call(rec, group, k, 2))
        concrete = latex_expr(update.xreplace({t: sp.Integer(k)}))
    else:
        (f,) = comps
        forms = [latex_expr(U.nested(k, of=f, levels=1))]
        if k >= 2:
            second = latex_expr(U.nested(k, of=f, levels=2))
            if second != forms[0]:
                forms.append(second)
        concrete = latex_expr(U.state(k, of=f).rhs)
    if abstract:
        return lhs, forms
    forms.append(concrete)
    if closed:
        value = (
            U.closed_form(k, of=name if vector else comps[0])
            if rec.has_explicit_size
            else _block_closed_form(U, name, k)
        )
        forms.append(_g(_label(rec, name), k, _closed_inputs(rec, value)))
        if estimated_chars(value) <= MAX_DISPLAY_CHARS:
            forms.append(latex_expr(value))
    return lhs, forms


# ================================================================================ sizes
_CHARS_PER_NODE = 7  # characters of LaTeX per node of an expression tree, measured on cells


def estimated_chars(expr: Any) -> int:
    """About how many characters of LaTeX ``expr`` prints as, without printing it.

    Counts the nodes of the expression *tree* (shared subexpressions counted each time they
    are printed) in time linear in the size of the DAG, so that a closed form too long to print
    costs nothing to reject.

    >>> import sympy as sp
    >>> x = sp.Symbol("x")
    >>> estimated_chars(x) < estimated_chars(sp.tanh(x + 1)) < 100
    True
    """
    sizes: dict[Any, int] = {}

    def size(e: Any) -> int:
        known = sizes.get(e)
        if known is not None:
            return known
        if isinstance(e, sp.MatrixBase):
            n = 1 + sum(size(v) for v in e)
        elif isinstance(e, sp.Basic) and e.args and not is_time_atom(e):
            n = 1 + sum(size(a) for a in e.args)
        else:
            n = 1
        sizes[e] = n
        return n

    return _CHARS_PER_NODE * size(expr)


# =================================================================================== latex
def _strip_math(tex: str) -> str:
    tex = tex.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\[", "\\]"), ("\\(", "\\)")):
        if tex.startswith(left) and tex.endswith(right) and len(tex) >= len(left) + len(right):
            return tex[len(left) : len(tex) - len(right)].strip()
    return tex


def _number(value: Any) -> str:
    """A float as LaTeX: ``1.2\\times 10^{-16}``; ``0``; ``\\text{nan}``."""
    if value is None:
        return "--"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return _escape(str(value))
    if math.isnan(x) or math.isinf(x):
        return f"$\\text{{{x}}}$"
    if x == 0:
        return "$0$"
    mantissa, exponent = f"{x:.1e}".split("e")
    power = int(exponent)
    if -2 <= power <= 2:
        return f"${x:.3g}$"
    return f"${mantissa}\\times 10^{{{power}}}$"


_QUANTITY = r"[A-Za-z][A-Za-z0-9]*(?:_[0-9]+)?(?:\([^()\s]*\))?(?:\[\d+(?:, \d+)*\])?"
_TABLE_MATH = re.compile(
    rf"dL/d(?P<wrt>{_QUANTITY})"
    rf"|d(?P<num>{_QUANTITY})/d(?P<den>{_QUANTITY})"
    r"|\bg\((?P<g>k|\d+)\)"
    r"|\b(?P<component>[A-Za-z]_\d+)\b"
    r"|\b(?P<index>[kt]) = (?P<values>\d+\.\.\d+|\d+(?:, \d+)*)"
    r"|\b(?P<timed>[A-Za-z][A-Za-z0-9]*(?:_[0-9]+)?\((?:t(?: [+-] \d+)?|-?\d+)\))"
)
_TABLE_WORDS = {"sr.solve": "the solver", "sr.jacobian": "the Jacobian", "sp.diff": "SymPy's diff"}


def _quantity_tex(name: str) -> str:
    """``W_21`` -> ``W_{21}``, ``h(0)`` -> ``h^{(0)}``; NumPy's 0-based entries as the book's
    1-based components: ``h(0)[1]`` -> ``h_{2}^{(0)}``, ``V[1, 0]`` -> ``V_{21}``."""
    m = re.fullmatch(
        r"([A-Za-z][A-Za-z0-9]*(?:_[0-9]+)?)(?:\(([^()]*)\))?(?:\[(\d+(?:, \d+)*)\])?", name
    )
    if m is None:
        return _escape(name)
    base, time, index = m.groups()
    tex = latex_expr(sp.Symbol(base))
    if index is not None:
        entries = [int(i) + 1 for i in index.split(", ")]
        sep = "," if max(entries) > 9 else ""
        if "_" in tex:  # an entry of a subscripted matrix (a layer's U_1): (U_1)_{31}
            tex = f"({tex})"
        tex += f"_{{{sep.join(map(str, entries))}}}"
    if time is not None:
        tex += f"^{{({time.replace(' ', '')})}}"
    return tex


def _table_prose(text: str) -> Paragraph:
    r"""A cell of the verification table as prose with math: ``dL/dV_12`` as
    :math:`\partial L / \partial V_{12}`, ``g(k)`` as :math:`g^{(k)}`, library names in words."""
    for code, words in _TABLE_WORDS.items():
        text = text.replace(code, words)
    parts: list[tuple[str, str]] = []
    last = 0
    for m in _TABLE_MATH.finditer(text):
        if m.group("wrt"):
            tex = f"\\partial L / \\partial {_quantity_tex(m.group('wrt'))}"
        elif m.group("num"):
            num, den = _quantity_tex(m.group("num")), _quantity_tex(m.group("den"))
            tex = f"\\partial {num} / \\partial {den}"
        elif m.group("g"):
            tex = f"g^{{({m.group('g')})}}"
        elif m.group("timed"):
            tex = _quantity_tex(m.group("timed"))
        elif m.group("index"):  # k = 1..3 as k = 1, \dots, 3
            tex = m.group("index") + " = " + m.group("values").replace("..", ", \\dots, ")
        else:
            tex = _quantity_tex(m.group("component"))
        parts += [("text", text[last : m.start()]), ("math", tex)]
        last = m.end()
    parts.append(("text", text[last:]))
    return Paragraph(tuple(p for p in parts if p[1]))


def _is_report(obj: Any) -> bool:
    rows = getattr(obj, "rows", None)
    return (
        isinstance(rows, (list, tuple))
        and hasattr(obj, "ok")
        and all(hasattr(r, "check") and hasattr(r, "status") for r in rows)
    )


def _common_tolerance(report: Any) -> str | None:
    """The tolerance shared by every row that ran, or None when they differ."""
    tols = {str(r.tol) for r in report.rows if str(r.status).lower() != "skipped"}
    return tols.pop() if len(tols) == 1 else None


def _report_table(report: Any) -> Table:
    """The rows of a verification report; rows that did not pass get their detail as a note.

    A tolerance shared by all rows is left out of the table (say it in the text).
    """
    shared = _common_tolerance(report)
    header = ["check", "compared", "max abs", "max rel", "tolerance", "status"]
    if shared is not None:
        header.remove("tolerance")
    rows = []
    notes: list[Paragraph | None] = []
    for r in report.rows:
        status = str(r.status)
        skipped = status.lower() == "skipped"
        compared = str(r.compared)
        where = getattr(r, "where", "")
        if where and not skipped:
            compared += f" ({where})"
        cells = [
            Paragraph.of(str(r.check).replace("_", " ")),
            _table_prose(compared),
            Paragraph.raw(_number(r.max_abs)),
            Paragraph.raw(_number(r.max_rel)),
        ]
        if shared is None:
            cells.append(Paragraph.of("" if skipped else str(r.tol)))
        cells.append(
            Paragraph.of(status if status.lower() in ("pass", "skipped") else status.upper())
        )
        rows.append(tuple(cells))
        detail = str(getattr(r, "detail", "") or "")
        notes.append(_p(_prose(detail)) if detail and status.lower() != "pass" else None)
    return Table(tuple(header), tuple(rows), tuple(notes))


def latex(obj: Any, **options: Any) -> str:
    r"""LaTeX for any symrnn object, in the book's notation.

    ============================  ==============================================================
    object                        result
    ============================  ==============================================================
    SymPy expression, matrix      :func:`symrnn.notation.latex_expr` (options are printer
                                  settings, e.g. ``order="none"``)
    ``Eq``                        ``lhs = rhs``
    list / tuple of ``Eq``        an ``aligned`` block
    :class:`~symrnn.Recurrence`   its equations as written (matrix form kept), ``aligned``
    :class:`~symrnn.Unfolded`     the chain, ``aligned``; rows beyond ``max_lines`` (12) elided
                                  with ``\vdots``.  ``step=k`` gives the lecture's expansion
                                  :math:`s^{(k)} = f(s^{(k-1)}; \theta) = f(f(s^{(k-2)}; \theta);
                                  \theta)`, then the concrete update and (``closed_form=True``)
                                  :math:`g^{(k)}(x^{(k)}, \dots, x^{(1)})` and its closed form;
                                  ``of=`` picks a state
    :class:`~symrnn.BPTT`         the adjoint recursion in symbolic t (``template()``)
    Solution, other objects with  their ``_latex_lines()`` as ``aligned``, or their
    ``_latex_lines`` or           ``_repr_latex_`` without the ``$`` delimiters
    ``_repr_latex_``
    verification Report           a ``tabular``: check, compared, errors, tolerance, status
    :class:`Derivation`           :meth:`Derivation.to_latex` (``document=True`` for a file)
    ============================  ==============================================================

    Long equations are broken into ``aligned`` rows that fit a standard ``article``'s text width
    (:data:`ARTICLE_WIDTH`); ``width=`` (points) sets another width, ``width=None`` keeps every
    equation on one line.

    >>> import sympy as sp, symrnn as sr
    >>> latex(sr.cells.rnn())
    '\\begin{aligned}h^{(t)} &= \\tanh{\\left(b + w h^{(t-1)} + u x^{(t)} \\right)}\\end{aligned}'
    >>> print(latex(sr.unfold(sr.cells.driven(), 3), step=3))
    s^{(3)} = f(s^{(2)}, x^{(3)}; \theta) = f(f(s^{(1)}, x^{(2)}; \theta), x^{(3)}; \theta)
    """
    width = options.pop("width", ARTICLE_WIDTH)
    if isinstance(obj, Derivation):
        _no_options(obj, options, allowed=("document",))
        return obj.to_latex(**options)
    if isinstance(obj, Unfolded):
        return _latex_unfolded(obj, width, **options)
    if isinstance(obj, Recurrence):
        _no_options(obj, options)
        return _aligned(_rows([_lines_equation(r) for r in obj._latex_lines()], width))
    if _is_bptt(obj):
        _no_options(obj, options)
        rows = [(latex_expr(e.lhs), "=", [latex_expr(e.rhs)]) for e in _natural(obj)]
        return _aligned(_rows(rows, width))
    if _is_matrix_bptt(obj):
        _no_options(obj, options)
        return _aligned(_rows([_lines_equation(r) for r in obj.latex_rows()], width))
    if _is_report(obj):
        _no_options(obj, options)
        return _report_table(obj).to_latex(center=False)
    if isinstance(obj, sp.Equality):
        lhs, rhs = latex_expr(obj.lhs, **options), latex_expr(obj.rhs, **options)
        if width is None or latex_width(f"{lhs} = {rhs}") <= width:
            return f"{lhs} = {rhs}"
        return _aligned(_rows([(lhs, "=", [rhs])], width))
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(e, sp.Equality) for e in obj):
        rows = [(latex_expr(e.lhs, **options), "=", [latex_expr(e.rhs, **options)]) for e in obj]
        return _aligned(_rows(rows, width))
    if isinstance(obj, (sp.Basic, sp.MatrixBase)) or isinstance(obj, (int, float)):
        tex = latex_expr(obj, **options)
        if width is None or latex_width(tex) <= width:
            return tex
        return _aligned([f"& {line}" for line in break_latex(tex, width)])
    lines = getattr(obj, "_latex_lines", None)
    if callable(lines):
        _no_options(obj, options)
        return _aligned(_rows([_lines_equation(r) for r in lines()], width))
    rich = getattr(obj, "_repr_latex_", None)
    if callable(rich):
        _no_options(obj, options)
        return _strip_math(rich())
    raise SymrnnError(
        f"latex cannot print {type(obj).__name__} objects; give a SymPy expression or Eq, a "
        "Recurrence, an Unfolded chain, a BPTT, a Solution, a verification Report or a Derivation"
    )


def equation_chain(lhs: str, forms: Sequence[str], width: float | None = ARTICLE_WIDTH) -> str:
    r"""``lhs = forms[0] = forms[1] = …`` in LaTeX: one line when it fits ``width`` (points),
    else an ``aligned`` block that continues with ``&= …`` on the next rows.

    >>> equation_chain("s^{(2)}", ["f(s^{(1)})", "f(f(s^{(0)}))"])
    's^{(2)} = f(s^{(1)}) = f(f(s^{(0)}))'
    """
    line = " = ".join([lhs, *forms])
    if width is None or latex_width(line) <= width:
        return line
    return _aligned(_rows([(lhs, "=", list(forms))], width))


def _lines_equation(row: str) -> tuple[str, str, list[str]]:
    lhs, rel, rhs = _split_row(row)
    return lhs, rel, [rhs]


def _is_bptt(obj: Any) -> bool:
    from .diff import BPTT

    return isinstance(obj, BPTT)


def _is_matrix_bptt(obj: Any) -> bool:
    from .matrix_form import MatrixBPTT

    return isinstance(obj, MatrixBPTT)


def _component_key(rec: Recurrence) -> dict[Any, tuple[str, int]]:
    """Each scalar component's vector and index, for printing components in natural order."""
    return {f: (name, i) for name, comps in rec.vectors.items() for i, f in enumerate(comps)}


def _natural(bptt: Any) -> list[sp.Equality]:
    """The template of a BPTT with each vector's adjoints in natural order (h_1, h_2, h_3)."""
    return natural_order(bptt.unfolded.recurrence, bptt.template())


def natural_order(rec: Recurrence, equations: Sequence[sp.Equality]) -> list[sp.Equality]:
    r"""Equations whose left sides are components (or their adjoints) reordered so that each
    vector's components come in natural order, the vectors keeping their place.

    The adjoint recursion runs backwards (``o_3, o_2, o_1, h_3, …``); printed, it reads
    :math:`\partial L/\partial o_1^{(t)}, \partial L/\partial o_2^{(t)}, …`.
    """
    key = _component_key(rec)

    def owner(eq: sp.Equality) -> tuple[str, int] | None:
        lhs = eq.lhs.args[0] if eq.lhs.args and is_time_atom(eq.lhs.args[0]) else eq.lhs
        return key.get(getattr(lhs, "func", None)) if is_time_atom(lhs) else None

    out: list[sp.Equality] = []
    run: list[tuple[int, sp.Equality]] = []
    run_name: str | None = None
    for eq in equations:
        k = owner(eq)
        if k is None or k[0] != run_name:
            out += [e for _, e in sorted(run, key=lambda r: r[0])]
            run, run_name = [], None if k is None else k[0]
        if k is None:
            out.append(eq)
        else:
            run.append((k[1], eq))
    out += [e for _, e in sorted(run, key=lambda r: r[0])]
    return out


def _no_options(obj: Any, options: Mapping[str, Any], allowed: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        known = ", ".join(("width", *allowed))
        raise SymrnnError(
            f"latex got option(s) {', '.join(unknown)}, which a {type(obj).__name__} does not "
            f"take; its options are: {known}"
        )


def _latex_unfolded(
    U: Unfolded,
    width: float | None,
    step: int | None = None,
    of: Any = None,
    closed_form: bool = True,
    max_lines: int = CHAIN_ROWS,
    **rest: Any,
) -> str:
    if rest:
        raise SymrnnError(
            f"latex got option(s) {', '.join(sorted(rest))}, which an Unfolded does not take; "
            "its options are: step, of, closed_form, max_lines, width"
        )
    if step is None:
        eqs = [e for step_eqs in _chain_steps(U) for e in step_eqs]
        rows = [(latex_expr(e.lhs), ":=", [latex_expr(e.rhs)]) for e in eqs]
        if len(rows) <= max_lines:
            return _aligned(_rows(rows, width))
        head, tail = _rows(rows[: max_lines // 2], width), _rows(rows[-2:], width)
        return _aligned([*head, "&\\;\\;\\vdots", *tail])
    if isinstance(step, sp.Basic) and step == t:
        pass  # the lecture's general form h^{(t)} = g^{(t)}(x^{(t)}, …, x^{(1)}) = f(…)
    else:
        U._check_step(step)
    groups = _state_groups(U.recurrence)
    if of is not None:
        names = {getattr(of, "name", None), getattr(of, "__name__", None), of}
        groups = [g for g in groups if g[0] in names or any(c in names for c in g[1])]
        if not groups:
            known = ", ".join(g[0] for g in _state_groups(U.recurrence))
            raise SymrnnError(f"of={of!r} is not a state of the recurrence; choose one of {known}")
    equations = [_lecture_forms(U, step, g, closed_form) for g in groups]
    if len(equations) == 1:
        lhs, forms = equations[0]
        line = " = ".join([lhs, *forms])
        if width is None or latex_width(line) <= width:
            return line
    return _aligned(_rows([(lhs, "=", forms) for lhs, forms in equations], width))


# ============================================================================ documents
_LATEX_SPECIALS = {
    "\\": "\\textbackslash{}",
    "{": "\\{",
    "}": "\\}",
    "_": "\\_",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "&": "\\&",
    "^": "\\^{}",
    "~": "\\~{}",
    "–": "--",  # ranges such as eqs. 10.18–10.21
    "…": "\\dots{}",
}
_MARKUP = re.compile(r"(\$[^$]+\$|`[^`]+`)")


def _escape(text: str) -> str:
    """Text for LaTeX: its specials escaped, symbols and Greek letters of library messages
    set as math (pdflatex cannot set them as text)."""
    out = []
    for c in text:
        if c in _LATEX_SPECIALS or c.isascii():
            out.append(_LATEX_SPECIALS.get(c, c))
        else:
            tex = latex_char(c)
            out.append(f"${tex}$" if tex else c)
    return "".join(out)


def _escape_markdown(text: str) -> str:
    return re.sub(r"([\\`*_|<>\[\]])", r"\\\1", text)


@dataclass(frozen=True)
class Paragraph:
    """Running text: parts ``(kind, text)`` with kind ``"text"``, ``"math"``, ``"code"`` or
    ``"raw"`` (LaTeX passed through, e.g. ``$1.2\\times 10^{-16}$``)."""

    parts: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, markup: str) -> Paragraph:
        """Text with ``$math$`` and ```code``` spans (for sentences written in this module)."""
        parts = []
        for piece in _MARKUP.split(markup):
            if not piece:
                continue
            if piece.startswith("$"):
                parts.append(("math", piece[1:-1]))
            elif piece.startswith("`"):
                parts.append(("code", piece[1:-1]))
            else:
                parts.append(("text", piece))
        return cls(tuple(parts))

    @classmethod
    def of(cls, text: str) -> Paragraph:
        """Plain text, taken literally (messages, names)."""
        return cls((("text", text),))

    @classmethod
    def raw(cls, tex: str) -> Paragraph:
        return cls((("raw", tex),))

    def __add__(self, other: Paragraph) -> Paragraph:
        return Paragraph(self.parts + other.parts)

    def to_latex(self) -> str:
        out = []
        for kind, text in self.parts:
            if kind == "math":
                out.append(f"${text}$")
            elif kind == "code":
                out.append(f"\\texttt{{{_escape(text)}}}")
            elif kind == "raw":
                out.append(text)
            else:
                out.append(_escape(text))
        return "".join(out)

    def to_markdown(self) -> str:
        out = []
        for kind, text in self.parts:
            if kind == "math":
                out.append(f"${text}$")
            elif kind == "code":
                out.append(f"`{text}`")
            elif kind == "raw":
                out.append(text)
            else:
                out.append(_escape_markdown(text))
        return "".join(out)


@dataclass(frozen=True)
class Display:
    r"""Displayed equations: rows of an ``align*`` (``lhs &= rhs``), already broken to fit."""

    rows: tuple[str, ...]

    def to_latex(self) -> str:
        return "\\begin{align*}\n" + " \\\\\n".join(self.rows) + "\n\\end{align*}"

    def to_markdown(self) -> str:
        return "$$\n\\begin{aligned}\n" + " \\\\\n".join(self.rows) + "\n\\end{aligned}\n$$"


@dataclass(frozen=True)
class Table:
    """A table of text cells; ``notes[i]`` (or None) is printed under row i across all columns."""

    header: tuple[str, ...]
    rows: tuple[tuple[Paragraph, ...], ...]
    notes: tuple[Paragraph | None, ...] = ()

    def to_latex(self, center: bool = True) -> str:
        ncols = len(self.header)
        spec = _TABLE_SPECS.get(ncols, "l" * ncols)
        lines = [f"\\begin{{tabular}}{{{spec}}}", "\\hline"]
        lines.append(" & ".join(_escape(h) for h in self.header) + " \\\\")
        lines.append("\\hline")
        notes = self.notes or (None,) * len(self.rows)
        for row, note in zip(self.rows, notes, strict=True):
            lines.append(" & ".join(cell.to_latex() for cell in row) + " \\\\")
            if note is not None:
                cell = (
                    f"\\multicolumn{{{ncols}}}{{p{{16cm}}}}{{\\hspace{{1.5em}}{note.to_latex()}}}"
                )
                lines.append(cell + " \\\\")
        lines += ["\\hline", "\\end{tabular}"]
        body = "\n".join(lines)
        return f"\\begin{{center}}\\small\n{body}\n\\end{{center}}" if center else body

    def to_markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        notes = self.notes or (None,) * len(self.rows)
        for row, note in zip(self.rows, notes, strict=True):
            lines.append("| " + " | ".join(c.to_markdown() for c in row) + " |")
            if note is not None:
                lines.append("| | " + note.to_markdown() + " |" + " |" * (len(self.header) - 2))
        return "\n".join(lines)


# check, compared (with where), max abs, max rel, tolerance, status: 16 cm with the gaps
_TABLE_SPECS = {6: "lp{6.2cm}rrp{2.2cm}l", 5: "lp{8.4cm}rrl"}


@dataclass(frozen=True)
class Figure:
    """A computational graph: TikZ for LaTeX (the document's fonts) in a floating ``figure``
    with its caption; SVG, drawn when asked for, for Markdown."""

    tikz: str
    graph: Any  # the symrnn.graph.Graph drawn
    caption: Paragraph

    def to_latex(self) -> str:
        return (
            f"\\begin{{figure}}[htbp]\n\\centering\n{self.tikz}"
            f"\\caption{{{self.caption.to_latex()}}}\n\\end{{figure}}"
        )

    def to_markdown(self) -> str:
        svg = self.graph._repr_svg_() or ""
        return svg[svg.find("<svg") :].strip() + f"\n\n*{self.caption.to_markdown()}*"


Block = Paragraph | Display | Table | Figure


@dataclass(frozen=True)
class Section:
    """One part of a derivation: ``key`` (stable name), ``title`` and its blocks."""

    key: str
    title: str
    blocks: tuple[Block, ...]

    def to_latex(self) -> str:
        parts = [f"\\subsection*{{{_escape(self.title)}}}"]
        parts += [b.to_latex() for b in self.blocks]
        return "\n\n".join(parts)

    def to_markdown(self) -> str:
        return "\n\n".join([f"### {self.title}", *(b.to_markdown() for b in self.blocks)])


_PREAMBLE = r"""\documentclass[10pt,a4paper]{article}
\usepackage[margin=2cm]{geometry}
\usepackage{amsmath}
\usepackage{amssymb}
\allowdisplaybreaks
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.6ex}
\emergencystretch=3em
\begin{document}
"""


@dataclass(frozen=True, eq=False)
class Derivation:
    r"""The mathematics of one recurrence, section by section, ready to print.

    Made by :func:`derivation`; immutable.  Sections (by ``key``): ``recurrence``,
    ``unfolding``, ``closed_form``, ``loss``, ``bptt``, ``gradients``, ``verification`` — each
    present, with a sentence saying why when it does not apply.

    Attributes
    ----------
    recurrence : Recurrence
    steps : int
    loss : sympy.Expr or None
        The loss as given: a per-step loss :math:`L^{(t)}` in ``t`` or a total loss.
    params : tuple
        The parameters the gradients are taken with respect to.
    sections : tuple of Section
    """

    recurrence: Recurrence
    steps: int
    loss: Any
    params: tuple[Any, ...]
    sections: tuple[Section, ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.sections)

    def section(self, key: str) -> Section:
        for s in self.sections:
            if s.key == key:
                return s
        raise SymrnnError(
            f"derivation has no section {key!r}; its sections are {', '.join(self.keys)}"
        )

    def without(self, *keys: str) -> Derivation:
        """The same derivation without the named sections (e.g. ``"verification"``)."""
        for key in keys:
            self.section(key)
        return replace(self, sections=tuple(s for s in self.sections if s.key not in keys))

    @property
    def title(self) -> str:
        return f"Derivation: {self.recurrence.name}" if self.recurrence.name else "Derivation"

    def to_latex(self, document: bool = False) -> str:
        r"""LaTeX: a fragment of ``\subsection*`` parts to paste into notes, or with
        ``document=True`` a complete file (``amsmath``, ``amssymb``) for ``pdflatex``."""
        body = "\n\n".join(s.to_latex() for s in self.sections)
        if not document:
            return body + "\n"
        preamble = _PREAMBLE
        if any(isinstance(b, Figure) for section in self.sections for b in section.blocks):
            preamble = preamble.replace(
                "\\usepackage{amssymb}\n", "\\usepackage{amssymb}\n\\usepackage{tikz}\n"
            )
        return f"{preamble}\\section*{{{_escape(self.title)}}}\n\n{body}\n\n\\end{{document}}\n"

    def to_markdown(self) -> str:
        """Markdown with ``$…$`` and ``$$…$$`` math, for notebooks and Markdown notes."""
        body = "\n\n".join(s.to_markdown() for s in self.sections)
        return f"## {self.title}\n\n{body}\n"

    def write(self, path: str | Path) -> Path:
        """Write a complete LaTeX document (``.tex``) or Markdown (``.md``), atomically."""
        path = Path(path)
        if path.suffix == ".md":
            return write_atomic(path, self.to_markdown())
        if path.suffix == ".tex":
            return write_atomic(path, self.to_latex(document=True))
        raise SymrnnError(f"cannot tell the format of {path.name}; name the file *.tex or *.md")

    def __str__(self) -> str:
        return self.to_latex()

    def __repr__(self) -> str:
        name = f" {self.recurrence.name!r}" if self.recurrence.name else ""
        return f"<Derivation{name}: {self.steps} steps, sections {', '.join(self.keys)}>"

    def _repr_latex_(self) -> str:
        return self.to_latex()

    def _repr_markdown_(self) -> str:
        return self.to_markdown()


# ------------------------------------------------------------------------- the sections
def _p(markup: str) -> Paragraph:
    return Paragraph.parse(markup)


def _display(equations: Sequence[tuple[str, str, Sequence[str]]]) -> Display:
    """Rows that fit the page, one equation per row."""
    return Display(tuple(_rows(equations, LINE_WIDTH)))


def _chain_display(U: Unfolded, max_rows: int = CHAIN_ROWS) -> Display:
    """The unfolded chain laid out one step per row (the quantities of a step side by side when
    they fit, else one per row), components in natural order; long chains elided with
    :math:`\vdots`."""
    steps = _chain_steps(U)
    per_step = max(len(eqs) for eqs in steps)
    cols = per_step if per_step > 1 else 1
    lhs_w = max(latex_width(latex_expr(e.lhs)) for eqs in steps for e in eqs)
    texts = [[(latex_expr(e.lhs), ":=", [latex_expr(e.rhs)]) for e in eqs] for eqs in steps]
    room = LINE_WIDTH / cols - _QUAD
    side_by_side = cols > 1 and all(
        lhs_w + _REL + latex_width(rhs[0]) <= room for eqs in texts for _, _, rhs in eqs
    )
    rows: list[str] = []
    for eqs in texts:
        if side_by_side:
            rows.append(" & ".join(f"{lhs} &{rel} {rhs[0]}" for lhs, rel, rhs in eqs))
        else:
            rows += _rows(eqs, LINE_WIDTH)
    if len(rows) > max_rows:
        rows = [*rows[: max_rows // 2], "&\\;\\;\\vdots", *rows[-2:]]
    return Display(tuple(rows))


def _chain_steps(U: Unfolded) -> list[list[sp.Equality]]:
    """The chain's equations step by step, each vector's components in natural order (at
    symbolic sizes, one matrix-level equation per vector)."""
    rec = U.recurrence
    if not rec.has_explicit_size:
        steps: dict[int, list[sp.Equality]] = {}
        for eq in U.blocks:
            steps.setdefault(int(_block_time(eq.lhs)), []).append(eq)
        return [steps[k] for k in sorted(steps)]
    key = _component_key(rec)
    names = [e.lhs.name for e in rec.display if isinstance(e.lhs, VectorAt)]
    defined = list(rec.defined)

    def rank(eq: sp.Equality) -> tuple[int, int]:
        f = eq.lhs.func
        if f in key and key[f][0] in names:
            return names.index(key[f][0]), key[f][1]
        return len(names) + defined.index(f) if f in defined else len(names) + len(defined), 0

    by_step: dict[int, list[sp.Equality]] = {}
    for eq in U.equations:
        by_step.setdefault(int(time_of(eq.lhs)), []).append(eq)
    return [sorted(by_step[k], key=rank) for k in sorted(by_step)]


def _math_list(items: Iterable[str]) -> str:
    items = list(items)
    return ", ".join(f"${i}$" for i in items)


def _recurrence_section(rec: Recurrence, U: Unfolded) -> Section:
    blocks: list[Block] = []
    name = f" `{rec.name}`" if rec.name else ""
    blocks.append(_p(f"The recurrence{name}:"))
    blocks.append(_display([_lines_equation(r) for r in rec._latex_lines()]))

    def described(role: str) -> list[str]:
        out = []
        for gname, comps, vector in _quantity_groups(rec, role):
            symbol = _group_symbol(gname, comps, vector)
            if vector:
                size = len(comps) if rec.has_explicit_size else rec.blocks.vector(comps[0]).rows
                symbol += f" \\in \\mathbb{{R}}^{{{latex_expr(sp.sympify(size, strict=True))}}}"
            out.append(symbol)
        return out

    facts = []
    for label, role in (
        ("state", "states"),
        ("input", "inputs"),
        ("output", "outputs"),
        ("same-time intermediate", "intermediates"),
    ):
        items = described(role)
        if items:
            facts.append(f"{label}{'s' if len(items) > 1 else ''} {_math_list(items)}")
    params = []
    shapes = (
        {name: getattr(value, "shape", None) for name, value in rec.param_groups.items()}
        if rec.has_explicit_size
        else {p.name: getattr(p, "shape", None) for p in rec.blocks.params}
    )
    for pname, shape in shapes.items():
        if shape is not None:
            rows, cols = (latex_expr(sp.sympify(d, strict=True)) for d in shape)
            dims = rows if cols == "1" else f"{rows} \\times {cols}"
            params.append(f"{_bold(pname)} \\in \\mathbb{{R}}^{{{dims}}}")
        else:
            params.append(latex_expr(sp.Symbol(pname, real=True)))
    if params:
        facts.append(f"parameter{'s' if len(params) > 1 else ''} {_math_list(params)}")
    text = "; ".join(facts)
    initial = _initial_states(U)
    if initial:
        plural = len(initial) > 1
        text += f". The initial state{'s' if plural else ''} {_math_list(initial)} "
        text += "stay symbolic" if plural else "stays symbolic"
    if text:
        blocks.append(_p(text[0].upper() + text[1:] + "."))
    return Section("recurrence", "The recurrence", tuple(blocks))


def _initial_states(U: Unfolded) -> list[str]:
    rec = U.recurrence
    if not rec.has_explicit_size:
        given = {_block_name(a) for a, _ in U.init}
        return [
            _group_at(name, comps, vector, sp.Integer(-lag))
            for name, comps, vector in _state_groups(rec)
            if name not in given
            for lag in range(rec.order)
        ]
    out = []
    for gname, comps, vector in _state_groups(rec):
        times = sorted({int(time_of(a)) for a in U.initial if a.func in comps}, reverse=True)
        out += [_group_at(gname, comps, vector, k) for k in times]
    return out


def _unfolding_section(U: Unfolded) -> Section:
    rec = U.recurrence
    k = U.steps
    blocks: list[Block] = [
        _p(
            f"Unfolded over $\\tau = {k}$ step{'s' if k > 1 else ''}, the recurrence becomes a "
            "chain of small equations, one per quantity and step (the unfolded computational "
            "graph):"
        ),
        _chain_display(U),
    ]
    abstract = _is_abstract(rec)
    groups = _state_groups(rec)
    equations = [_lecture_forms(U, k, g, closed=False) for g in groups]
    last = "" if abstract else " (and then written out)"
    blocks.append(_p(f"As in the lecture, with the update written as a function $f${last}:"))
    blocks.append(_display([(lhs, "=", forms) for lhs, forms in equations]))
    return Section("unfolding", "Unfolding", tuple(blocks))


#: Figures are scaled down to the text width (A4, 2 cm margins) and to this height, inches.
FIGURE_WIDTH, FIGURE_HEIGHT = 6.4, 8.0
#: Below this scale TikZ labels get too small to read; an unfolding then draws fewer steps.
MIN_FIGURE_SCALE = 0.65


def _figure(g: Any, caption: str) -> Figure | None:
    """``g`` as a figure that fits the page, or None where it would have to shrink too far."""
    width, height = g.layout_size()
    scale = min(1.0, FIGURE_WIDTH / width, FIGURE_HEIGHT / height)
    if scale < MIN_FIGURE_SCALE:
        return None
    return Figure(g.to_tikz(scale=round(scale, 3)), g, _p(caption))


def _graphs_section(U: Unfolded, loss: Any, per_step: Any, total: Any) -> Section:
    """The folded graph, the unfolding with the loss, and the graph of BPTT, each drawn over as
    many of the first steps as fit the page (a per-step loss is drawn for any number of steps,
    a loss at fixed times only with all of them)."""
    from .diff import bptt, total_loss
    from .graph import graph
    from .unfold import unfold

    rec = U.recurrence
    template = loss if per_step is not None else None
    if not rec.has_explicit_size:  # a vector is one node whatever its size: draw at size 2
        stand_in = {size: sp.Integer(2) for size in rec.blocks.sizes}
        rec = rec.at_sizes(**{str(size): 2 for size in stand_in})
        template = template.xreplace(stand_in) if template is not None else None
    blocks: list[Block] = [
        _p(
            "The figures draw the recurrence as computational graphs: one node per quantity, "
            "as in the book's Fig. 10.2 and 10.3."
        )
    ]
    folded = _figure(
        graph(rec, loss=template),
        "The recurrence folded: a black square on an edge is a delay of one step.",
    )
    if folded is not None:
        blocks.append(folded)
    for k in range(min(U.steps, 3), 0, -1):
        unfolded = unfold(rec, k)
        if template is not None:
            drawn_loss = total_loss(unfolded, template)
        else:
            drawn_loss = total if k == U.steps else None
        first = f"over the first {k} step{'s' if k > 1 else ''}"
        steps = first if k < U.steps else "over all $\\tau$ steps"
        drawn = _figure(
            graph(unfolded, loss=drawn_loss),
            f"The recurrence unfolded {steps}, time running from left to right"
            + (" (more steps would not fit the page)." if k < U.steps else "."),
        )
        if drawn is not None:
            break
    else:
        blocks.append(_p("The unfolded graph is too wide for the page even for one step."))
        return Section("graphs", "Computational graphs", tuple(blocks))
    blocks.append(drawn)
    if drawn_loss is None or _is_abstract(rec):
        return Section("graphs", "Computational graphs", tuple(blocks))
    backward = _figure(
        graph(bptt(unfolded, drawn_loss)),
        f"Back-propagation through time {steps}: the dashed edges "
        "carry each adjoint $\\partial L / \\partial v$ back from the loss $L$.",
    )
    if backward is None:
        blocks.append(
            _p(
                "The graph of back-propagation through time is too large for the page; "
                "`symrnn graph --bptt` draws it on its own."
            )
        )
    else:
        blocks.append(backward)
    return Section("graphs", "Computational graphs", tuple(blocks))


def _closed_form_section(U: Unfolded, solve: bool) -> Section:
    rec = U.recurrence
    groups = _state_groups(rec)
    blocks: list[Block] = []
    inputs = _quantity_groups(rec, "inputs")
    given = (
        "of the inputs (the initial state and the parameters held fixed)"
        if inputs
        else "of the initial state and the parameters"
    )
    general = [_lecture_forms(U, t, g, closed=False) for g in groups]
    blocks.append(_p(f"After $t$ steps the state is a function $g^{{(t)}}$ {given}:"))
    blocks.append(_display([(lhs, "=", forms[:2]) for lhs, forms in general]))
    equations: list[tuple[str, str, Sequence[str]]] = []
    skipped: list[str] = []
    for k in range(1, min(U.steps, CLOSED_FORM_STEPS) + 1):
        for gname, comps, vector in groups:
            sized = rec.has_explicit_size
            value = (
                U.closed_form(k, of=gname if vector else comps[0])
                if sized
                else _block_closed_form(U, gname, k)
            )
            lhs = _group_at(gname, comps, vector, k)
            if estimated_chars(value) > MAX_DISPLAY_CHARS:
                skipped.append(f"${lhs}$")
                continue
            g = _g(_label(rec, gname), k, _closed_inputs(rec, value))
            if vector and sized:
                equations.append((lhs, "=", [g]))
                equations += [
                    (latex_expr(c(k)), "=", [latex_expr(v)])
                    for c, v in zip(comps, value, strict=True)
                ]
            else:
                equations.append((lhs, "=", [g, latex_expr(value)]))
    if equations:
        blocks.append(_p("Substituting the chain into itself gives it for the first steps:"))
        blocks.append(_display(equations))
    if skipped:
        what = ", ".join(skipped)
        verb = "is" if len(skipped) == 1 else "are"
        blocks.append(
            _p(
                f"The closed form{'s' if len(skipped) > 1 else ''} {what} {verb} too long to "
                f"print usefully (over {MAX_DISPLAY_CHARS} characters of LaTeX); the chain "
                "above computes " + ("it" if len(skipped) == 1 else "them") + " step by step."
            )
        )
    blocks += _solution_blocks(rec, solve)
    return Section("closed_form", "Closed form", tuple(blocks))


_CODE_QUANTITY = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)\((t(?: [+-] \d+)?|-?\d+)\)")
_REMEDY = re.compile(r"[;,]\s*(use|pass|try|write|give|call|see|substitute)\b.*$", re.IGNORECASE)


def _prose(message: str) -> str:
    r"""A library message as a sentence for a document: quantities such as ``s(t - 1)`` as
    :math:`s^{(t-1)}`, and the remedy addressed to a programmer (``; use sr.unfold …``) left
    out.

    >>> _prose("s(t) depends nonlinearly on s(t - 1); use sr.unfold for fixed t")
    '$s^{(t)}$ depends nonlinearly on $s^{(t-1)}$.'
    """
    text = _REMEDY.sub("", message.strip()).rstrip(" .;,")
    text = re.sub(r"no closed form for Recurrence '[^']*': ", "", text)
    text = re.sub(r"has the factor .*? of degree", "has a factor of degree", text)
    text = re.sub(r"\bin t\b", "in $t$", text)
    for code, words in _TABLE_WORDS.items():
        text = text.replace(code, words)
    text = _CODE_QUANTITY.sub(
        lambda m: f"${latex_expr(sp.Symbol(m.group(1)))}^{{({m.group(2).replace(' ', '')})}}$",
        text,
    )
    return re.sub(r"\bfunction ([A-Za-z])\b", r"function $\1$", text.replace("`", "")) + "."


#: How :func:`symrnn.solve` found a closed form, as words for a document.
_METHOD_WORDS = {
    "characteristic": "the roots of the characteristic polynomial",
    "linear-driven": "the impulse response convolved with the input",
    "matrix-power": "powers of the transition matrix",
    "rsolve": "SymPy's rsolve",
}


def _solution_blocks(rec: Recurrence, solve: bool) -> list[Block]:
    if not solve:
        return [_p("A closed form in symbolic $t$ was not sought.")]
    if not rec.has_explicit_size:
        return [_p("A closed form in symbolic $t$ is sought for explicit sizes only.")]
    try:
        from .solve import solve as solve_recurrence
    except ImportError:
        return [_p("A closed form in symbolic $t$ needs the solver, which is not installed.")]
    try:
        solution = solve_recurrence(rec)
    except SymrnnError as error:
        reason = str(error)
        if reason.startswith("no closed form for") and ": " in reason:
            reason = reason.split(": ", 1)[1]  # the head repeats what the sentence says
        return [_p("There is no closed form in symbolic $t$: " + _prose(reason))]
    rows = _rows([_lines_equation(r) for r in solution._latex_lines()], LINE_WIDTH)
    method = _METHOD_WORDS.get(str(solution.method), str(solution.method).replace("_", " "))
    intro = _p(
        f"For every $t$ (found by {method}, and checked by substituting it back into the "
        "recurrence):"
    )
    return [intro, Display(tuple(rows))]


def _as_loss(U: Unfolded, loss: Any) -> tuple[Any, Any]:
    """``(per-step template or None, total loss)`` from a loss in ``t`` or at fixed times."""
    if is_matrix(loss):
        m = explicit(loss)
        if m.shape != (1, 1):
            raise SymrnnError(
                f"the loss must be a scalar, got a {m.shape[0]}x{m.shape[1]} matrix; sum it, "
                "e.g. with sr.squared_error(o(t), y(t))"
            )
        loss = m[0, 0]
    loss = sp.sympify(parse_in_scope(loss, U, "the loss"), strict=True)
    if not U.recurrence.has_explicit_size:  # whole vectors only: no components to expand
        if t not in loss.free_symbols:
            raise SymrnnError(
                f"the loss {loss} is at fixed times; at symbolic sizes give a per-step loss of "
                "whole vectors such as sr.squared_error(o(t), y(t)), or explicit sizes "
                "(rec.at_sizes(n=3))"
            )
        return loss, None
    loss = expand_losses(loss)
    symbolic = t in loss.free_symbols or any(not time_of(a).is_Integer for a in time_atoms(loss))
    if symbolic:
        from .diff import total_loss

        return loss, total_loss(U, loss)
    return None, loss


def _loss_form(rec: Recurrence, per_step: Any) -> Any:
    """The book's form of the per-step loss (softmax cross-entropy, squared error), or None."""
    if per_step is None or not rec.is_vector:
        return None
    from .matrix_form import recognise_loss

    return recognise_loss(rec, per_step)


def _loss_section(U: Unfolded, per_step: Any, total: Any) -> Section:
    if per_step is None and total is None:
        return Section(
            "loss",
            "Loss",
            (
                _p(
                    "No loss was given, so the back-propagation below is written for a generic "
                    "per-step loss $L^{(t)}$ of every quantity, $L = \\sum_{t=1}^{\\tau} L^{(t)}$."
                ),
            ),
        )
    blocks: list[Block] = []
    k = U.steps
    if per_step is not None:
        blocks.append(
            _p(
                "The loss is the sum of the per-step losses, "
                f"$L = {latex_expr(sp.Sum(_PER_STEP_LOSS(t), (t, 1, _TAU)))}$, with"
            )
        )
        form = _loss_form(U.recurrence, per_step)
        if form is not None:
            rows = [
                (latex_expr(e.lhs), "=", [latex_expr(e.rhs, order="none")])
                for e in form.definitions(t)
            ]
            blocks.append(_display(rows))
            if form.kind == "softmax_cross_entropy":
                blocks.append(
                    _p(
                        "where $\\operatorname{softmax}(\\mathbf{o})_i = e^{o_i} / "
                        "\\sum_j e^{o_j}$ and the target $\\mathbf{y}^{(t)}$ is a probability "
                        "vector (one-hot for a class label)."
                    )
                )
        elif estimated_chars(per_step) <= MAX_DISPLAY_CHARS:
            blocks.append(_display([(latex_expr(_PER_STEP_LOSS(t)), "=", [latex_expr(per_step)])]))
        terms = [latex_expr(_PER_STEP_LOSS(j)) for j in range(1, k + 1)]
        if k > 4:
            terms = [terms[0], terms[1], "\\dots", terms[-1]]
        blocks.append(_p(f"For $\\tau = {k}$ steps, $L = {' + '.join(terms)}$."))
    elif estimated_chars(total) <= MAX_DISPLAY_CHARS:
        blocks.append(_p("The loss:"))
        blocks.append(_display([("L", "=", [latex_expr(total)])]))
    else:
        blocks.append(
            _p(
                f"The loss is a function of the quantities at fixed steps, too long to print "
                f"usefully (over {MAX_DISPLAY_CHARS} characters of LaTeX)."
            )
        )
    return Section("loss", "Loss", tuple(blocks))


def _all_params(rec: Recurrence) -> tuple[Any, ...]:
    """Every parameter: scalar entries for explicit sizes, the matrices at symbolic sizes."""
    return tuple(rec.params) if rec.has_explicit_size else tuple(rec.blocks.params)


def _flat_params(rec: Recurrence, params: Sequence[Any] | None) -> list[Any]:
    if params is None:
        return list(rec.params)
    out: list[Any] = []
    for p in params:
        out.extend(explicit(p) if is_matrix(p) else [p])
    return out


def _shortest(expr: Any) -> Any:
    candidates = [expr, sp.together(expr), sp.cancel(expr)]
    return min(candidates, key=lambda e: (len(latex_expr(e)), candidates.index(e)))


def _bptt_sections(
    U: Unfolded, per_step: Any, total: Any, params: Sequence[Any] | None
) -> list[Section]:
    rec = U.recurrence
    if _is_abstract(rec):
        return [
            Section(
                "bptt",
                "Back-propagation through time",
                (
                    _p(
                        "The update $f$ is abstract, so there is nothing to differentiate: the "
                        "gradients need a concrete $f$, such as the RNN's "
                        "$f(h^{(t-1)}, x^{(t)}; \\theta) = \\tanh(b + w h^{(t-1)} + u x^{(t)})$."
                    ),
                ),
            )
        ]
    if not rec.has_explicit_size:
        return _matrix_bptt_sections(rec, per_step, params)
    from .diff import template_equations

    wrt = _flat_params(rec, params)
    template = natural_order(rec, template_equations(rec, wrt))
    direct: dict[Any, Any] = {}
    if per_step is not None:
        from .losses import expand_losses

        components = expand_losses(per_step)
        for f in rec.defined:
            direct[f] = sp.diff(components, f(t))
    zero = {sp.Derivative(_PER_STEP_LOSS(t), f(t)): sp.S.Zero for f, d in direct.items() if d == 0}
    adjoints: list[tuple[str, str, list[str]]] = []
    gradients: list[tuple[str, str, list[str]]] = []
    for eq in template:
        rhs = eq.rhs.xreplace(zero) if zero else eq.rhs
        row = (latex_expr(eq.lhs), "=", [latex_expr(rhs)])
        (adjoints if is_time_atom(eq.lhs.args[0]) else gradients).append(row)
    form = _loss_form(rec, per_step)
    matrix = _matrix_form(rec, per_step, params)

    blocks: list[Block] = [_p(_BPTT_INTRO)]
    if matrix is not None:
        where = " at $t = \\tau$ the terms from $t + 1$ vanish" if matrix[1] else ""
        blocks.append(_p(f"In matrix form{';' + where if where else ''}:"))
        blocks.append(_display([_lines_equation(e) for e in matrix[0]]))
        blocks.append(_p("Component by component:"))
    blocks.append(_display(adjoints))
    shown = [(f, d) for f, d in direct.items() if d != 0]
    if form is not None:
        blocks += _direct_book_terms(form)
    elif shown:
        blocks.append(_p("The direct terms of the per-step loss are"))
        rows = []
        for f, d in natural_order_funcs(rec, shown):
            if estimated_chars(d) <= MAX_DISPLAY_CHARS:
                lhs = latex_expr(sp.Derivative(_PER_STEP_LOSS(t), f(t)))
                rows.append((lhs, "=", [latex_expr(_shortest(d))]))
        blocks.append(_display(rows))
    sections = [Section("bptt", "Back-propagation through time", tuple(blocks))]

    grad_blocks: list[Block] = [_p(_GRADIENTS_INTRO)]
    if matrix is not None and matrix[2]:
        grad_blocks.append(_display([_lines_equation(e) for e in matrix[2]]))
        grad_blocks.append(_p("Component by component:"))
    if gradients:
        grad_blocks.append(_display(gradients))
    else:
        grad_blocks = [_p("No parameters were asked for, so there are no parameter gradients.")]
    sections.append(Section("gradients", "Parameter gradients", tuple(grad_blocks)))
    return sections


_BPTT_INTRO = (
    "The gradient of the loss with respect to every quantity obeys a backward recursion "
    "(Goodfellow et al., eqs. 10.18–10.21), run from $t = \\tau$ down to $t = 1$; terms at "
    "$t = \\tau + 1$ are zero."
)
_GRADIENTS_INTRO = (
    "Each parameter collects the contributions of every step, a sum over time (eqs. 10.22–10.28):"
)


def _matrix_bptt_sections(rec: Recurrence, per_step: Any, params: Any) -> list[Section]:
    """BPTT and the parameter gradients at symbolic sizes: the matrix form, which is all there is
    (components exist for explicit sizes only)."""
    matrix = _matrix_form(rec, per_step, params)
    if matrix is None:
        text = (
            "At symbolic sizes the equations exist in matrix form only, and this recurrence is "
            "not written with whole vectors and matrices; give explicit sizes for its "
            "components."
        )
        return [Section("bptt", "Back-propagation through time", (_p(text),))]
    recursion, at_tau, gradients = matrix
    where = " (at $t = \\tau$ the terms from $t + 1$ vanish)" if at_tau else ""
    blocks: list[Block] = [
        _p(_BPTT_INTRO),
        _p(f"In matrix form, for any size{where}:"),
        _display([_lines_equation(e) for e in recursion]),
    ]
    form = _loss_form(rec, per_step)
    if form is not None:
        blocks += _direct_book_terms(form)
    if per_step is None:
        blocks.append(
            _p(
                "Here $\\nabla_{\\mathbf{o}^{(t)}} L$ stands for the direct term of a generic "
                "per-step loss."
            )
        )
    sections = [Section("bptt", "Back-propagation through time", tuple(blocks))]
    grad_blocks: list[Block] = [
        _p(_GRADIENTS_INTRO),
        _display([_lines_equation(e) for e in gradients]),
    ]
    if not gradients:
        grad_blocks = [_p("No parameters were asked for, so there are no parameter gradients.")]
    sections.append(Section("gradients", "Parameter gradients", tuple(grad_blocks)))
    return sections


def natural_order_funcs(rec: Recurrence, pairs: Sequence[tuple[Any, Any]]) -> list[Any]:
    """``(component function, value)`` pairs with each vector's components in natural order."""
    key = _component_key(rec)
    return sorted(pairs, key=lambda p: key.get(p[0], (p[0].__name__, 0)))


def _direct_book_terms(form: Any) -> list[Block]:
    """The direct terms of a recognised loss, as the book writes them (eq. 10.18)."""
    o, y = form.prediction, form.target
    lhs = f"\\frac{{\\partial L^{{(t)}}}}{{\\partial {o}_{{i}}^{{(t)}}}}"
    if form.kind == "softmax_cross_entropy":
        rhs = f"\\hat{{{y}}}_{{i}}^{{(t)}} - {y}_{{i}}^{{(t)}}"
        text = (
            "The direct terms of the per-step loss are, for a target that sums to one "
            "(Goodfellow et al., eq. 10.18),"
        )
    else:
        rhs = f"{o}_{{i}}^{{(t)}} - {y}_{{i}}^{{(t)}}"
        text = "The direct terms of the per-step loss are"
    row = f"{lhs} &= {rhs}, \\qquad i = 1, \\dots, {form.size}"
    return [_p(text), Display((row,))]


def _matrix_form(
    rec: Recurrence, per_step: Any, params: Sequence[Any] | None
) -> tuple[list[str], bool, list[str]] | None:
    """Rows of the matrix-form recursion in the book's order (with the values at τ), whether
    any row is at τ, and the rows of the gradients; None for recurrences not in matrix form."""
    if not rec.is_vector or not all(isinstance(e.lhs, VectorAt) for e in rec.display):
        return None
    from .matrix_form import matrix_bptt

    try:
        M = matrix_bptt(rec, loss=per_step)
    except SymrnnError:
        return None
    wanted = None
    if params is not None:
        wanted = {p.name for p in params if isinstance(p, sp.MatrixSymbol)}
    rows = M.latex_rows()
    n_loss, n_grad = len(M.loss), len(M.gradients)
    recursion = rows[n_loss : len(rows) - n_grad]
    grads = [
        row
        for row, e in zip(rows[len(rows) - n_grad :], M.gradients, strict=True)
        if wanted is None or e.lhs.arg.name in wanted
    ]
    return recursion, any("\\tau" in r.partition("&")[0] for r in recursion), grads


def _verification_section(rec: Recurrence, steps: int, loss: Any, run: bool) -> Section:
    title = "Verification"
    if _is_abstract(rec):
        text = "Skipped: an abstract update $f$ cannot be evaluated numerically."
        return Section("verification", title, (_p(text),))
    if not run:
        return Section("verification", title, (_p("The numeric checks were not run."),))
    try:
        from .verify import verify as verify_recurrence
    except ImportError:
        text = "The numeric checks are not available in this installation."
        return Section("verification", title, (_p(text),))
    try:
        report = verify_recurrence(rec, steps=steps, loss=loss)
    except SymrnnError as error:
        return Section("verification", title, (_p("Skipped: ") + Paragraph.of(str(error)),))
    rows = list(report.rows)
    skipped = [r for r in rows if str(r.status).lower() == "skipped"]
    failed = [r for r in rows if str(r.status).lower() not in ("pass", "skipped")]
    ran = len(rows) - len(skipped)
    if failed:
        verdict = f"{len(failed)} of {ran} comparisons do NOT pass."
    else:
        verdict = f"all {ran} comparisons pass."
    if skipped:
        verdict += f" {len(skipped)} did not apply (see the notes)."
    shared = _common_tolerance(report)
    tolerance = f", tolerance {shared}" if shared else ""
    sizes = ""
    if not rec.has_explicit_size:
        from .verify import VERIFY_SIZE

        names = ", ".join(f"${latex_expr(n)} = {VERIFY_SIZE}$" for n in rec.blocks.sizes)
        sizes = f", at the size{'s' if len(rec.blocks.sizes) > 1 else ''} {names}"
    intro = _p(
        "Every form was checked numerically against the others (random parameters, initial "
        f"states and inputs in float64, $\\tau = {steps}${tolerance}{sizes}): " + verdict
    )
    return Section("verification", title, (intro, _report_table(report)))


def derivation(
    rec: Recurrence,
    steps: int = 3,
    loss: Any = None,
    params: Sequence[Any] | None = None,
    *,
    solve: bool = True,
    verify: bool = True,
    figures: bool = False,
) -> Derivation:
    r"""The derivation of a recurrence for lecture notes: every step from equations to checks.

    Sections: the recurrence; its unfolding over ``steps`` steps (the chain, then the lecture's
    :math:`s^{(\tau)} = f(s^{(\tau-1)}; \theta) = f(f(s^{(\tau-2)}; \theta); \theta)` and the
    concrete update); the closed forms :math:`g^{(t)}` for t = 1 … min(steps, 3) and, where
    :func:`symrnn.solve` finds one, for symbolic t; the loss
    :math:`L = \sum_t L^{(t)}`; the BPTT adjoint recursion (matrix form too, for vector
    recurrences) and the parameter gradients as sums over time; the :func:`symrnn.verify`
    table.  Sections that do not apply say so in a sentence (an abstract ``f`` has no gradients).

    Parameters
    ----------
    rec : Recurrence
    steps : int
        τ, the number of steps unfolded (and checked).
    loss : sympy.Expr, optional
        A per-step loss :math:`L^{(t)}` in ``t`` (``sr.squared_error(h(t), y(t))``), summed over
        t = 1 … τ; or a total loss in quantities at fixed times (``(h(3) - y)**2``).
    params : sequence, optional
        Parameters (symbols or parameter matrices) for the gradients; default all.
    solve, verify : bool
        Look for a closed form in symbolic t / run the numeric checks (both take a few seconds).
    figures : bool
        Add a section ``graphs``: the folded, unfolded and BPTT computational graphs as TikZ
        pictures laid out by Graphviz (``dot`` must be installed) in the document's fonts,
        each scaled to the page; as SVG in :meth:`Derivation.to_markdown`.

    Returns
    -------
    Derivation
        ``to_latex()``, ``to_latex(document=True)``, ``to_markdown()``, ``write(path)``.

    Examples
    --------
    >>> import symrnn as sr
    >>> D = derivation(sr.cells.autonomous(), steps=3)
    >>> D.keys
    ('recurrence', 'unfolding', 'closed_form', 'loss', 'bptt', 'verification')
    """
    if not isinstance(rec, Recurrence):
        raise SymrnnError(f"derivation needs a Recurrence, got {type(rec).__name__}")
    from .unfold import unfold

    U = unfold(rec, steps)
    per_step, total = (None, None) if loss is None else _as_loss(U, loss)
    sections = [
        _recurrence_section(rec, U),
        _unfolding_section(U),
        _closed_form_section(U, solve),
    ]
    if figures:
        sections.insert(2, _graphs_section(U, loss, per_step, total))
    if loss is not None or not _is_abstract(rec):
        sections.append(_loss_section(U, per_step, total))
    else:
        sections.append(_loss_section(U, None, None))
    sections += _bptt_sections(U, per_step, total, params)
    sections.append(_verification_section(rec, U.steps, loss, verify))
    return Derivation(
        recurrence=rec,
        steps=U.steps,
        loss=loss,
        params=tuple(params) if params is not None else _all_params(rec),
        sections=tuple(sections),
    )
