r"""Model files: a recurrence, its loss, parameter values and a number of steps, in TOML.

A model file is a small TOML document::

    name = "elman"
    equations = ["h(t) = tanh(w*h(t-1) + u*x(t) + b)", "o(t) = c + v*h(t)"]
    loss = "(o(t) - y(t))**2 / 2"     # per step, summed over t = 1 ... steps
    steps = 4
    [params]                          # optional numeric values (examples for generated code)
    w = 0.5

Every string is read by the whitelist parser (:mod:`symrnn.parsing`), never by ``eval``,
``sympify`` or ``parse_expr``.  The loss is read with the recurrence's own quantities, so ``h(t)``
in the loss is the recurrence's ``h``; time functions that the recurrence does not know
(``y``) are targets.  Bad files raise a one-line :class:`~symrnn.errors.SymrnnError` that names
the key at fault and the remedy; limits: :data:`MAX_MODEL_BYTES` bytes per file and
``1 ≤ steps ≤`` :data:`symrnn.unfold.MAX_STEPS`.

>>> m = load_model('''
... name = "elman"
... equations = ["h(t) = tanh(w*h(t-1) + u*x(t) + b)", "o(t) = c + v*h(t)"]
... loss = "(o(t) - y(t))**2 / 2"
... steps = 4
... [params]
... w = 0.5
... ''')
>>> m.name, m.steps, dict(m.params)
('elman', 4, {'w': 0.5})
>>> print(m.recurrence)
elman: h(t) = tanh(b + u*x(t) + w*h(t - 1))
       o(t) = c + v*h(t)
>>> m.loss
(o(t) - y(t))**2/2
"""

from __future__ import annotations

import math
import os
import re
import stat
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import sympy as sp

from .errors import LimitError, ParseError, SymrnnError
from .notation import shift_of, t, time_atoms, time_of
from .recurrence import Recurrence
from .unfold import MAX_STEPS, Unfolded

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["Model", "load_model", "parse_loss", "check_steps", "MAX_MODEL_BYTES", "MODEL_KEYS"]

#: Largest model file read, in bytes; a larger file is refused after reading this many + 1.
MAX_MODEL_BYTES = 1_000_000

#: The keys a model file may have, with what each holds.
MODEL_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "name": "a short name (letters, digits, '_', '-', spaces)",
        "equations": "the equations: one string, or a list of strings",
        "loss": "the per-step loss, a string in t such as (o(t) - y(t))**2 / 2",
        "steps": f"the number of time steps, an integer from 1 to {MAX_STEPS:,}",
        "params": "a table of numeric parameter values",
        "functions": "a list of abstract update function names, such as ['f']",
    }
)

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_ \-]{0,63}\Z")
_EXAMPLE = 'equations = ["h(t) = tanh(w*h(t-1) + u*x(t) + b)"]'


@dataclass(frozen=True, eq=False)
class Model:
    """A recurrence with its loss, parameter values and number of steps.

    Attributes
    ----------
    name : str or None
    recurrence : Recurrence
    loss : sympy.Expr or None
        The per-step loss :math:`L^{(t)}` as a template in ``t`` (summed over the steps by
        :meth:`total_loss`), or an expression at fixed times (``h(3)``), used as the total.
    steps : int or None
    params : mapping
        Numeric parameter values by name (read-only).
    functions : tuple of str
        Abstract update functions declared in the file (``functions = ["f"]``).
    """

    name: str | None
    recurrence: Recurrence
    loss: sp.Expr | None = None
    steps: int | None = None
    params: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    functions: tuple[str, ...] = ()

    @classmethod
    def from_equation(
        cls,
        text: str,
        *,
        steps: int | None = None,
        loss: str | None = None,
        name: str | None = None,
        functions: Iterable[str] = (),
    ) -> Model:
        """A model from equations written directly, several separated by ``;`` or newlines.

        >>> m = Model.from_equation("h(t) = tanh(w*h(t-1) + x(t))", steps=3, loss="h(t)**2")
        >>> m.steps, m.loss
        (3, h(t)**2)
        """
        functions = _check_function_names(functions, "functions")
        recurrence = _recurrence(text, name, functions, "in the equations")
        return cls(
            name=name,
            recurrence=recurrence,
            loss=None if loss is None else parse_loss(recurrence, loss, functions),
            steps=None if steps is None else check_steps(steps, MAX_STEPS, "steps"),
            functions=functions,
        )

    def with_options(self, *, steps: int | None = None, loss: str | None = None) -> Model:
        """A copy with ``steps`` and/or the loss (a string, parsed like the file's) replaced."""
        model = self
        if steps is not None:
            model = replace(model, steps=check_steps(steps, MAX_STEPS, "steps"))
        if loss is not None:
            model = replace(model, loss=parse_loss(self.recurrence, loss, self.functions))
        return model

    @property
    def per_step(self) -> bool:
        """True when the loss is a per-step template in t (summed over the steps)."""
        return self.loss is not None and _is_template(self.loss)

    def total_loss(self, unfolded: Unfolded) -> sp.Expr:
        r"""The total loss on ``unfolded``: :math:`\sum_{t=1}^{\tau} L^{(t)}` for a template,
        the expression itself for a loss at fixed times.

        >>> import symrnn as sr
        >>> m = Model.from_equation("h(t) = w*h(t-1) + x(t)", loss="h(t)**2")
        >>> m.total_loss(sr.unfold(m.recurrence, 2))
        h(1)**2 + h(2)**2
        """
        from .diff import total_loss

        if self.loss is None:
            raise SymrnnError(
                f"{self._label()} has no loss; give one with --loss, "
                "e.g. --loss '(h(t) - y(t))**2/2'"
            )
        if self.per_step:
            return total_loss(unfolded, self.loss)
        latest = max(int(time_of(a)) for a in time_atoms(self.loss))
        if latest > unfolded.steps:
            raise SymrnnError(
                f"the loss uses time {latest}, after the last step {unfolded.steps}; "
                f"unfold at least {latest} steps or write the loss as a per-step template in t"
            )
        return self.loss

    def recurrence_with_loss_params(self) -> Recurrence:
        """The recurrence with the symbols that only the loss uses added to its parameters.

        A loss may bring its own symbols, such as a weight-decay coefficient; the command line
        treats them as parameters (given in ``[params]``, taken and differentiated by generated
        code, checked by ``symrnn check``).

        >>> m = Model.from_equation("h(t) = w*h(t-1) + x(t)", loss="h(t)**2 + lam*w**2")
        >>> m.recurrence.params, m.recurrence_with_loss_params().params
        ((w,), (w, lam))
        """
        from .diff import loss_only_symbols

        rec = self.recurrence
        extra = [] if self.loss is None else loss_only_symbols(rec, self.loss)
        if not extra:
            return rec
        return Recurrence(rec.display, params=[*rec.params, *extra], name=rec.name)

    def _label(self) -> str:
        return f"model {self.name!r}" if self.name else "the model"

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}", f"equations={len(self.recurrence.display)}"]
        if self.loss is not None:
            parts.append(f"loss={self.loss}")
        if self.steps is not None:
            parts.append(f"steps={self.steps}")
        if self.params:
            parts.append(f"params={dict(self.params)}")
        return f"<Model {' '.join(parts)}>"


def load_model(source: str | bytes | os.PathLike[str]) -> Model:
    """Read a model from a TOML file (a path) or from TOML text.

    ``source`` is a path when it is a :class:`os.PathLike`, or a string without a newline that
    ends in ``.toml`` or names an existing file; ``bytes`` and other strings are the TOML text.

    Raises
    ------
    ParseError
        The file is not UTF-8 or not TOML, or a key or value is wrong (unknown key, wrong type,
        bad equation or loss); the message names the key.
    LimitError
        The file is larger than :data:`MAX_MODEL_BYTES` or ``steps`` is out of range.
    SymrnnError
        The file cannot be read (missing, a folder, no permission).
    """
    if isinstance(source, bytes):
        return _from_bytes(source, "the model text")
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        return _from_bytes(_read_limited(path), f"model file {_short_path(path)}")
    if isinstance(source, str):
        return _from_text(source, "the model text")
    raise ParseError(
        f"load_model needs a path or TOML text, got {type(source).__name__}; "
        "pass e.g. 'examples/elman.toml'"
    )


def parse_loss(recurrence: Recurrence, text: str, functions: Iterable[str] = ()) -> sp.Expr:
    """Read a loss with the whitelist parser, using ``recurrence``'s own quantities and symbols.

    The loss is a per-step template in ``t`` (``(o(t) - y(t))**2/2``, may use ``h(t-1)``) or an
    expression at fixed times (``h(3)``); mixing the two is refused, as are future times.

    >>> rec = Recurrence.parse("h(t) = tanh(w*h(t-1) + x(t))")
    >>> loss = parse_loss(rec, "(h(t) - y(t))**2")
    >>> rec.defined[0](t) in loss.atoms(sp.Function)
    True
    """
    from .parsing import parse_expression

    if not isinstance(text, str):
        raise ParseError(
            f"the loss must be a string, got {type(text).__name__}; "
            'write e.g. loss = "(h(t) - y(t))**2 / 2"'
        )
    names: dict[str, Any] = {str(p): p for p in recurrence.params}
    names.update((f.__name__, f) for f in (*recurrence.defined, *recurrence.inputs))
    try:
        loss = parse_expression(text, names=names, functions=functions)
    except SymrnnError as exc:
        raise type(exc)(f"in the loss: {exc}") from exc
    if not isinstance(loss, sp.Expr) or isinstance(loss, sp.MatrixBase):
        raise ParseError("the loss must be a scalar expression; sum the components of a vector")
    atoms = time_atoms(loss)
    fixed = [a for a in atoms if time_of(a).is_Integer]
    if fixed and len(fixed) != len(atoms):
        raise ParseError(
            f"the loss mixes fixed times ({fixed[0]}) and t; write a per-step template in t "
            "such as (h(t) - y(t))**2/2, or a loss at fixed times only such as h(3)**2"
        )
    for atom in atoms:
        when = time_of(atom)
        if when.is_Integer:
            if when < 0:
                raise ParseError(
                    f"the loss uses {atom}, before the initial state; use times 0 and later"
                )
            continue
        shift = shift_of(atom)
        if shift is None:
            raise ParseError(
                f"the loss uses {atom}, whose time is not t - k for a constant k; "
                "write e.g. h(t) or h(t-1)"
            )
        if shift > 0:
            raise ParseError(
                f"the loss uses {atom}, which is after step t; a per-step loss may use t and "
                "earlier times, e.g. h(t) or h(t-1)"
            )
    if t in loss.free_symbols and not atoms:
        raise ParseError("the loss uses t outside a quantity such as h(t); write e.g. h(t)**2")
    return loss


def check_steps(value: Any, limit: int, what: str = "steps") -> int:
    """``value`` as a step count in 1 … ``limit``, or a one-line error naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParseError(
            f"{what} must be an integer, got {_describe_value(value)}; write e.g. {what} = 4"
        )
    if value < 1:
        raise ParseError(f"{what} must be at least 1, got {value}; write e.g. {what} = 4")
    if value > limit:
        raise LimitError(f"{what} = {value:,} exceeds the limit of {limit:,}; use fewer steps")
    return value


# ------------------------------------------------------------------------------ reading
def _looks_like_path(text: str) -> bool:
    if "\n" in text or "\r" in text or "\0" in text:
        return False
    if text.endswith(".toml"):
        return True
    try:
        return os.path.isfile(text)
    except (OSError, ValueError):
        return False


def _short_path(path: Path) -> str:
    text = str(path)
    return repr(text if len(text) <= 80 else "..." + text[-77:])


def _read_limited(path: Path) -> bytes:
    where = _short_path(path)
    try:
        if path.exists() and not path.is_dir() and not stat.S_ISREG(path.stat().st_mode):
            # A pipe or device could block or never end; a model file is a regular file.
            raise SymrnnError(f"model file {where} is not a regular file; give a .toml file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_MODEL_BYTES + 1)
    except FileNotFoundError:
        raise SymrnnError(
            f"model file {where} does not exist; check the path, or give the equation directly "
            "as 'h(t) = tanh(w*h(t-1) + x(t))'"
        ) from None
    except IsADirectoryError:
        raise SymrnnError(
            f"model file {where} is a folder; give the path of a .toml file"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SymrnnError(f"cannot read model file {where}: {reason}; check the path") from None
    if len(data) > MAX_MODEL_BYTES:
        raise LimitError(
            f"model file {where} is larger than the limit of {MAX_MODEL_BYTES:,} bytes; "
            "a model file holds a few equations, keep it short"
        )
    return data


def _from_bytes(data: bytes, where: str) -> Model:
    if len(data) > MAX_MODEL_BYTES:
        raise LimitError(
            f"{where} is larger than the limit of {MAX_MODEL_BYTES:,} bytes; keep it short"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParseError(
            f"{where} is not valid UTF-8 (byte 0x{data[exc.start]:02x} on line {line}); "
            "save the file as UTF-8 text"
        ) from None
    return _from_text(text, where)


def _from_text(text: str, where: str) -> Model:
    if len(text.encode("utf-8", "surrogatepass")) > MAX_MODEL_BYTES:
        raise LimitError(
            f"{where} is larger than the limit of {MAX_MODEL_BYTES:,} bytes; keep it short"
        )
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = " ".join(str(exc).split())[:200]
        raise ParseError(
            f"{where} is not valid TOML ({message}); write key = value lines, e.g. {_EXAMPLE}"
        ) from None
    except RecursionError:
        raise LimitError(f"{where} is nested too deeply to read; a model file is flat") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        message = " ".join(str(exc).split())[:120]
        raise ParseError(f"{where} holds a value TOML cannot read ({message})") from None
    return _from_table(table, where)


def _from_table(table: dict[str, Any], where: str) -> Model:
    unknown = [key for key in table if key not in MODEL_KEYS]
    if unknown:
        allowed = ", ".join(MODEL_KEYS)
        raise ParseError(
            f"{where} has the unknown key {_quote_key(unknown[0])}; the allowed keys are {allowed}"
        )
    if "equations" not in table:
        raise ParseError(f"{where} has no 'equations'; add e.g. {_EXAMPLE}")
    name = table.get("name")
    if name is not None and not (isinstance(name, str) and _NAME.match(name)):
        raise ParseError(
            f"{where}: name must be a string of at most 64 letters, digits, '_', '-' or spaces, "
            f'got {_describe_value(name)}; write e.g. name = "elman"'
        )
    functions = _check_function_names(table.get("functions", []), "functions", where)
    equations = table["equations"]
    if isinstance(equations, list):
        if not equations or not all(isinstance(e, str) for e in equations):
            raise ParseError(
                f"{where}: equations must be a string or a non-empty list of strings; "
                f"write e.g. {_EXAMPLE}"
            )
    elif not isinstance(equations, str):
        raise ParseError(
            f"{where}: equations must be a string or a list of strings, got "
            f"{_describe_value(equations)}; write e.g. {_EXAMPLE}"
        )
    recurrence = _recurrence(equations, name, functions, f"{where}: equations")
    loss = table.get("loss")
    if loss is not None:
        if not isinstance(loss, str):
            raise ParseError(
                f"{where}: loss must be a string, got {_describe_value(loss)}; "
                'write e.g. loss = "(h(t) - y(t))**2 / 2"'
            )
        try:
            loss = parse_loss(recurrence, loss, functions)
        except SymrnnError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
    steps = table.get("steps")
    if steps is not None:
        try:
            steps = check_steps(steps, MAX_STEPS, "steps")
        except SymrnnError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
    params = _check_params(table.get("params", {}), recurrence, loss, where)
    return Model(name, recurrence, loss, steps, MappingProxyType(params), functions)


def _recurrence(
    equations: str | list[str], name: str | None, functions: tuple[str, ...], where: str
) -> Recurrence:
    try:
        return Recurrence.parse(equations, name=name, functions=functions)
    except SymrnnError as exc:
        raise type(exc)(f"{where}: {exc}") from exc


def _check_function_names(value: Any, key: str, where: str = "") -> tuple[str, ...]:
    head = f"{where}: " if where else ""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ParseError(
            f"{head}{key} must be a list of names, got {_describe_value(value)}; "
            f'write e.g. {key} = ["f"]'
        )
    for item in value:
        if not (isinstance(item, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,63}", item)) or (
            "__" in item or item in ("t", "pi")
        ):
            raise ParseError(
                f"{head}{key} holds {_describe_value(item)}, which is not a function name; "
                "use names of letters, digits and single underscores such as 'f'"
            )
    return tuple(value)


def _check_params(
    value: Any, recurrence: Recurrence, loss: sp.Expr | None, where: str
) -> dict[str, float]:
    if not isinstance(value, dict):
        raise ParseError(
            f"{where}: params must be a table of numbers, got {_describe_value(value)}; "
            "write [params] and then lines such as w = 0.5"
        )
    known = {str(p) for p in recurrence.params}
    if loss is not None:
        known |= {str(s) for s in loss.free_symbols if s != t}
    out: dict[str, float] = {}
    for key, number in value.items():
        if key not in known:
            names = ", ".join(sorted(known)) or "none"
            raise ParseError(
                f"{where}: params has {_quote_key(key)}, which is not a parameter of the model "
                f"(its parameters: {names}); remove it or correct its name"
            )
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ParseError(
                f"{where}: params.{key} must be a number, got {_describe_value(number)}; "
                f"write e.g. {key} = 0.5"
            )
        if abs(number) > 1e300 or not math.isfinite(number):  # an int may not fit a float
            raise ParseError(
                f"{where}: params.{key} = {_shorten(str(number))} is not a finite number of "
                "moderate size (at most 1e300); "
                f"write e.g. {key} = 0.5"
            )
        out[key] = number
    return out


def _shorten(text: str) -> str:
    return text if len(text) <= 24 else text[:21] + "..."


def _is_template(loss: sp.Expr) -> bool:
    atoms = time_atoms(loss)
    return not atoms or any(not time_of(a).is_Integer for a in atoms)


def _describe_value(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _quote_key(key: str) -> str:
    text = " ".join(str(key).split())
    return repr(text if len(text) <= 40 else text[:37] + "...")
