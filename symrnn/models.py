r"""Model files: a recurrence, its loss, parameter values and a number of steps, in TOML.

A model file is a small TOML document::

    name = "elman"
    equations = ["h(t) = tanh(w*h(t-1) + u*x(t) + b)", "o(t) = c + v*h(t)"]
    loss = "(o(t) - y(t))**2 / 2"     # per step, summed over t = 1 ... steps
    steps = 4
    [params]                          # optional numeric values (examples for generated code)
    w = 0.5

Vector models declare ``sizes``, ``vectors`` and ``matrices`` and write ``@`` for the matrix
product, ``*`` for the elementwise product of vectors and ``W.T`` for a transpose; or they name a
cell of :mod:`symrnn.cells` (``cell = "lstm"``, sized by ``n``, ``m`` and ``k``).  ``params_file``
gives parameter arrays from a ``.npz`` file, relative to the model file, read with
``allow_pickle=False``; limits: :data:`MAX_SIZE`, :data:`MAX_ENTRIES`, :data:`MAX_WEIGHTS_BYTES`,
:data:`MAX_WEIGHT_ARRAYS`.

>>> v = load_model('''
... sizes = { n = 3, m = 2 }
... vectors = { h = "n", x = "m" }
... matrices = { W = ["n", "n"], U = ["n", "m"] }
... equations = "h(t) = tanh(W @ h(t-1) + U @ x(t))"
... ''')
>>> v.is_vector, v.declared["U"].shape
(True, (3, 2))
>>> load_model('cell = "gru"\nsizes = { n = 2 }').recurrence.name
'gru'

Every string is read by the whitelist parser (:mod:`symrnn.parsing`), never by ``eval``,
``sympify`` or ``parse_expr``.  The loss is read with the recurrence's own quantities, so ``h(t)``
in the loss is the recurrence's ``h``; time functions that the recurrence does not know
(``y``) are targets.  Bad files raise a one-line :class:`~symrnn.errors.SymrnnError` that names
the key at fault and the remedy; limits: :data:`MAX_MODEL_BYTES` bytes per file and
``1 ≤ steps ≤`` :data:`symrnn.MAX_STEPS`.

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
elman: h(t) = tanh(b + w*h(t - 1) + u*x(t))
       o(t) = c + v*h(t)
>>> m.loss
(o(t) - y(t))**2/2
"""

from __future__ import annotations

import inspect
import math
import os
import re
import stat
import sys
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import sympy as sp

from .errors import LimitError, ParseError, ShapeError, SymrnnError
from .matrices import VectorAt, explicit, has_explicit_size, is_matrix, matrix, size
from .matrices import vector as time_vector
from .notation import t, time_atoms, time_of
from .recurrence import Recurrence
from .unfold import MAX_STEPS, Unfolded

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "Model",
    "load_model",
    "parse_loss",
    "check_steps",
    "cell_names",
    "MAX_MODEL_BYTES",
    "MODEL_KEYS",
    "MAX_SIZE",
    "MAX_ENTRIES",
    "MAX_WEIGHTS_BYTES",
    "MAX_WEIGHT_ARRAYS",
    "CELL_SIZES",
]

#: Largest model file read, in bytes; a larger file is refused after reading this many + 1.
MAX_MODEL_BYTES = 1_000_000
#: Largest value of one size (``sizes = { n = 3 }``).
MAX_SIZE = 1_024
#: Most entries of all declared vectors and matrices together (the products of their sizes);
#: for a cell, the size n times the largest of n, m and k.
MAX_ENTRIES = 65_536
#: Largest ``params_file``, in bytes, and most bytes of its arrays once uncompressed.
MAX_WEIGHTS_BYTES = 64_000_000
#: Most arrays in one ``params_file``.
MAX_WEIGHT_ARRAYS = 256
#: What the sizes of a model with ``cell = ...`` mean: size name -> keyword of the cell.
CELL_SIZES: Mapping[str, str] = MappingProxyType({"n": "n", "m": "inputs", "k": "outputs"})
_MAX_SIZE_NAMES = 32
_CELL_KEYWORDS = frozenset(CELL_SIZES.values())

#: The keys a model file may have, with what each holds.
MODEL_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "name": "a short name (letters, digits, '_', '-', spaces)",
        "equations": "the equations: one string, or a list of strings",
        "loss": "the per-step loss, a string in t such as (o(t) - y(t))**2 / 2",
        "steps": f"the number of time steps, an integer from 1 to {MAX_STEPS:,}",
        "params": "a table of numeric parameter values",
        "functions": "a list of abstract update function names, such as ['f']",
        "sizes": "a table of sizes: integers, or 'symbolic', e.g. { n = 3, m = 2 }",
        "vectors": "a table of time-indexed vectors and their sizes, e.g. { h = 'n', x = 'm' }",
        "matrices": "a table of parameter matrices and their sizes, e.g. { W = ['n', 'n'] }",
        "cell": "a cell of symrnn.cells by name, e.g. 'lstm', sized by sizes n, m and k",
        "params_file": "a .npz file of parameter arrays by name, relative to the model file",
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
    sizes : mapping
        Sizes by name (``sizes = { n = 3 }``): integers, or positive integer symbols.
    declared : mapping
        Vectors (:class:`~symrnn.matrices.TimeVector`) and parameter matrices
        (:class:`sympy.MatrixSymbol`) by name, as declared or as the cell defines them; strings
        given later (``--loss``) are read with them.
    cell : str or None
        The name of the :mod:`symrnn.cells` function the recurrence comes from.
    weights : mapping
        Parameter arrays from ``params_file`` by name (read-only), shaped as the parameters.
    """

    name: str | None
    recurrence: Recurrence
    loss: sp.Expr | None = None
    steps: int | None = None
    params: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    functions: tuple[str, ...] = ()
    sizes: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    declared: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    cell: str | None = None
    weights: Mapping[str, np.ndarray] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_equation(
        cls,
        text: str,
        *,
        steps: int | None = None,
        loss: str | None = None,
        name: str | None = None,
        functions: Iterable[str] = (),
        sizes: Mapping[str, Any] | None = None,
        vectors: Mapping[str, Any] | None = None,
        matrices: Mapping[str, Any] | None = None,
    ) -> Model:
        """A model from equations written directly, several separated by ``;`` or newlines.

        ``sizes``, ``vectors`` and ``matrices`` are tables as in a model file.

        >>> m = Model.from_equation("h(t) = tanh(w*h(t-1) + x(t))", steps=3, loss="h(t)**2")
        >>> m.steps, m.loss
        (3, h(t)**2)
        >>> v = Model.from_equation(
        ...     "h(t) = tanh(W @ h(t-1) + U @ x(t))",
        ...     sizes={"n": 3, "m": 2},
        ...     vectors={"h": "n", "x": "m"},
        ...     matrices={"W": ["n", "n"], "U": ["n", "m"]},
        ... )
        >>> print(v.recurrence)
        h(t) = tanh(W*h(t - 1) + U*x(t))
        """
        functions = _check_function_names(functions, "functions")
        where = "on the command line"
        size_table = _check_sizes(sizes or {}, where)
        declared = _declare(size_table, vectors or {}, matrices or {}, functions, where)
        recurrence = _recurrence(text, name, functions, "in the equations", declared)
        _check_declared_used(declared, recurrence, where)
        return cls(
            name=name,
            recurrence=recurrence,
            loss=None if loss is None else parse_loss(recurrence, loss, functions, declared),
            steps=None if steps is None else check_steps(steps, MAX_STEPS, "steps"),
            functions=functions,
            sizes=MappingProxyType(size_table),
            declared=MappingProxyType(declared),
        )

    @classmethod
    def from_cell(
        cls,
        cell: str,
        *,
        sizes: Mapping[str, Any] | None = None,
        vectors: Mapping[str, Any] | None = None,
        steps: int | None = None,
        loss: str | None = None,
    ) -> Model:
        """A model of a cell of :mod:`symrnn.cells` by name, sized by ``n``, ``m`` and ``k``.

        ``sizes`` maps ``n`` (units), ``m`` (inputs) and ``k`` (outputs) to integers, as
        :data:`CELL_SIZES` says; ``vectors`` declares more vectors for the loss (targets).

        >>> m = Model.from_cell("gru", sizes={"n": 3, "m": 2})
        >>> m.recurrence.name, m.declared["h"]
        ('gru', vector('h', 3))
        """
        where = "on the command line"
        size_table = _check_sizes(sizes or {}, where)
        recurrence = _cell(cell, size_table, where)
        declared = _declared_by(recurrence)
        declared.update(_declare_targets(size_table, vectors or {}, declared, where))
        return cls(
            name=recurrence.name,
            recurrence=recurrence,
            loss=None if loss is None else parse_loss(recurrence, loss, (), declared),
            steps=None if steps is None else check_steps(steps, MAX_STEPS, "steps"),
            sizes=MappingProxyType(size_table),
            declared=MappingProxyType(declared),
            cell=cell,
        )

    def with_options(self, *, steps: int | None = None, loss: str | None = None) -> Model:
        """A copy with ``steps`` and/or the loss (a string, parsed like the file's) replaced."""
        model = self
        if steps is not None:
            model = replace(model, steps=check_steps(steps, MAX_STEPS, "steps"))
        if loss is not None:
            loss_expr = parse_loss(self.recurrence, loss, self.functions, self.declared)
            model = replace(model, loss=loss_expr)
        return model

    @property
    def is_vector(self) -> bool:
        """True when the recurrence has vector quantities (declared or from a cell)."""
        return bool(self.recurrence.is_vector)

    def parameter_values(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Every parameter's value by name: from ``params_file`` and ``[params]``, the rest drawn
        uniformly from [-1, 1] with ``seed``; matrices as arrays of their shape.

        >>> m = Model.from_equation("h(t) = w*h(t-1) + x(t)")
        >>> m.parameter_values()["w"].shape
        ()
        """
        groups = self.recurrence_with_loss_params().param_groups
        rng = np.random.default_rng(seed)
        out: dict[str, np.ndarray] = {}
        for name, group in groups.items():
            shape = tuple(group.shape) if isinstance(group, sp.MatrixBase) else ()
            if name in self.weights:
                out[name] = np.array(self.weights[name], dtype=float)
            elif name in self.params:
                out[name] = np.array(float(self.params[name]))
            else:
                out[name] = rng.uniform(-1.0, 1.0, shape)
        return out

    def given_values(self) -> dict[str, float]:
        """The values the file gives, by scalar parameter (matrix entries by entry name, W_12).

        >>> Model.from_equation("h(t) = w*h(t-1) + x(t)").given_values()
        {}
        """
        out = {name: float(value) for name, value in self.params.items()}
        groups = self.recurrence_with_loss_params().param_groups
        for name, array in self.weights.items():
            group = groups[name]
            if isinstance(group, sp.MatrixBase):
                flat = np.asarray(array, dtype=float).reshape(group.shape)
                for (i, j), entry in np.ndenumerate(flat):
                    out[str(group[i, j])] = float(entry)
            else:
                out[name] = float(np.asarray(array, dtype=float).reshape(()))
        return out

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
        latest = max(int(_time(a)) for a in _loss_atoms(self.loss))
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
        if self.sizes:
            parts.append(f"sizes={dict(self.sizes)}")
        if self.cell:
            parts.append(f"cell={self.cell!r}")
        if self.weights:
            parts.append(f"weights={sorted(self.weights)}")
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
        The file is larger than :data:`MAX_MODEL_BYTES`, ``steps`` is out of range, or sizes
        or ``params_file`` exceed :data:`MAX_SIZE`, :data:`MAX_ENTRIES`,
        :data:`MAX_WEIGHTS_BYTES` or :data:`MAX_WEIGHT_ARRAYS`.
    ShapeError
        The shapes in an equation or of an array in ``params_file`` do not agree; the message
        names the equation or the array and both shapes.
    SymrnnError
        The file cannot be read (missing, a folder, no permission).
    """
    if isinstance(source, bytes):
        return _from_bytes(source, "the model text", Path("."))
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        return _from_bytes(_read_limited(path), f"model file {_short_path(path)}", path.parent)
    if isinstance(source, str):
        return _from_text(source, "the model text", Path("."))
    raise ParseError(
        f"load_model needs a path or TOML text, got {type(source).__name__}; "
        "pass e.g. 'examples/elman.toml'"
    )


def parse_loss(
    recurrence: Recurrence,
    text: str,
    functions: Iterable[str] = (),
    declared: Mapping[str, Any] | None = None,
) -> sp.Expr:
    """Read a loss with the whitelist parser, using ``recurrence``'s own quantities and symbols.

    The loss is a per-step template in ``t`` (``(o(t) - y(t))**2/2``, may use ``h(t-1)``) or an
    expression at fixed times (``h(3)``); mixing the two is refused, as are future times.
    Vectors of the recurrence are in scope by name (``o(t)`` is the vector), with the vectors
    and matrices in ``declared`` (targets such as ``y``) and the losses ``squared_error`` and
    ``softmax_cross_entropy``; a 1x1 result such as ``h(t).T @ h(t)`` is its one entry.

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
    names.update(_declared_by(recurrence))
    names.update(declared or {})
    names.update(_loss_functions())
    try:
        loss = parse_expression(text, names=names, functions=functions)
    except SymrnnError as exc:
        raise type(exc)(f"in the loss: {exc}") from exc
    if is_matrix(loss) and tuple(loss.shape) == (1, 1) and has_explicit_size(loss):
        loss = explicit(loss)[0, 0]
    if not isinstance(loss, sp.Expr) or is_matrix(loss):
        raise ParseError(
            "the loss must be a scalar expression, got a vector or matrix; sum its components, "
            "e.g. squared_error(o(t), y(t)) or softmax_cross_entropy(o(t), y(t))"
        )
    atoms = _loss_atoms(loss)
    fixed = [a for a in atoms if _time(a).is_Integer]
    if fixed and len(fixed) != len(atoms):
        raise ParseError(
            f"the loss mixes fixed times ({fixed[0]}) and t; write a per-step template in t "
            "such as (h(t) - y(t))**2/2, or a loss at fixed times only such as h(3)**2"
        )
    for atom in sorted(atoms, key=sp.default_sort_key):
        when = _time(atom)
        if when.is_Integer:
            if when < 0:
                raise ParseError(
                    f"the loss uses {atom}, before the initial state; use times 0 and later"
                )
            continue
        difference = sp.expand(when - t)
        shift = int(difference) if difference.is_Integer else None
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


def _from_bytes(data: bytes, where: str, base: Path) -> Model:
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
    return _from_text(text, where, base)


def _from_text(text: str, where: str, base: Path) -> Model:
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
    return _from_table(table, where, base)


def _from_table(table: dict[str, Any], where: str, base: Path) -> Model:
    unknown = [key for key in table if key not in MODEL_KEYS]
    if unknown:
        allowed = ", ".join(MODEL_KEYS)
        raise ParseError(
            f"{where} has the unknown key {_quote_key(unknown[0])}; the allowed keys are {allowed}"
        )
    if "cell" in table:
        for key in ("equations", "matrices", "functions"):
            if key in table:
                raise ParseError(
                    f"{where} has both 'cell' and {key!r}; a cell brings its own equations and "
                    f"parameters: remove {key!r}, or remove 'cell' and write the equations"
                )
    elif "equations" not in table:
        raise ParseError(f"{where} has no 'equations'; add e.g. {_EXAMPLE}")
    name = table.get("name")
    if name is not None and not (isinstance(name, str) and _NAME.match(name)):
        raise ParseError(
            f"{where}: name must be a string of at most 64 letters, digits, '_', '-' or spaces, "
            f'got {_describe_value(name)}; write e.g. name = "elman"'
        )
    functions = _check_function_names(table.get("functions", []), "functions", where)
    sizes = _check_sizes(table.get("sizes", {}), where)
    if "cell" in table:
        recurrence = _cell(table["cell"], sizes, where)
        if name is not None:
            recurrence = Recurrence(recurrence.display, params=recurrence.params, name=name)
        declared = _declared_by(recurrence)
        declared.update(_declare_targets(sizes, table.get("vectors", {}), declared, where))
    else:
        declared = _declare(
            sizes, table.get("vectors", {}), table.get("matrices", {}), functions, where
        )
        recurrence = _equations(table["equations"], name, functions, where, declared)
        _check_declared_used(declared, recurrence, where)
    loss = table.get("loss")
    if loss is not None:
        if not isinstance(loss, str):
            raise ParseError(
                f"{where}: loss must be a string, got {_describe_value(loss)}; "
                'write e.g. loss = "(h(t) - y(t))**2 / 2"'
            )
        try:
            loss = parse_loss(recurrence, loss, functions, declared)
        except SymrnnError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
    steps = table.get("steps")
    if steps is not None:
        try:
            steps = check_steps(steps, MAX_STEPS, "steps")
        except SymrnnError as exc:
            raise type(exc)(f"{where}: {exc}") from exc
    params = _check_params(table.get("params", {}), recurrence, loss, where)
    model = Model(
        name,
        recurrence,
        loss,
        steps,
        MappingProxyType(params),
        functions,
        sizes=MappingProxyType(sizes),
        declared=MappingProxyType(declared),
        cell=table.get("cell"),
    )
    if "params_file" in table:
        weights = _load_weights(table["params_file"], base, model, where)
        model = replace(model, weights=MappingProxyType(weights))
    return model


def _equations(
    equations: Any, name: str | None, functions: tuple[str, ...], where: str, declared: Any
) -> Recurrence:
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
    return _recurrence(equations, name, functions, f"{where}: equations", declared)


def _recurrence(
    equations: str | list[str],
    name: str | None,
    functions: tuple[str, ...],
    where: str,
    declared: Mapping[str, Any] | None = None,
) -> Recurrence:
    from .parsing import parse_equations

    try:
        if not declared:
            return Recurrence.parse(equations, name=name, functions=functions)
        return Recurrence(
            parse_equations(equations, names=declared, functions=functions), name=name
        )
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
    if not value:
        return {}
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
    atoms = _loss_atoms(loss)
    return not atoms or any(not _time(a).is_Integer for a in atoms)


def _loss_atoms(loss: sp.Expr) -> set[Any]:
    """The time-indexed quantities a loss reads: scalars ``h(t)`` and whole vectors ``o(t)``
    (inside the losses of :mod:`symrnn.losses`, which keep their vectors whole)."""
    return time_atoms(loss) | loss.atoms(VectorAt)


def _time(atom: Any) -> sp.Expr:
    return atom.time if isinstance(atom, VectorAt) else time_of(atom)


def _describe_value(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _quote_key(key: str) -> str:
    text = " ".join(str(key).split())
    return repr(text if len(text) <= 40 else text[:37] + "...")


# ------------------------------------------------------------- sizes, vectors and matrices
_DECLARED_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}\Z")
_SIZES_EXAMPLE = "sizes = { n = 3, m = 2 }"


def _check_declared_name(name: Any, key: str, where: str) -> str:
    from .parsing import KNOWN_FUNCTIONS

    if (
        not (isinstance(name, str) and _DECLARED_NAME.match(name))
        or "__" in name
        or name in ("t", "pi")
        or name in KNOWN_FUNCTIONS
    ):
        raise ParseError(
            f"{where}: {key} has {_quote_key(str(name))}, which is not a usable name; use letters, "
            "digits and single underscores, starting with a letter, such as h or W_hh (not t, "
            "pi or a function name)"
        )
    return name


def _check_table(value: Any, key: str, example: str, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(
            f"{where}: {key} must be a table, got {_describe_value(value)}; write e.g. {example}"
        )
    return value


def _check_sizes(value: Any, where: str) -> dict[str, Any]:
    """Sizes by name: integers in 1 … MAX_SIZE, or positive integer symbols for 'symbolic'."""
    table = _check_table(value, "sizes", _SIZES_EXAMPLE, where)
    if len(table) > _MAX_SIZE_NAMES:
        raise LimitError(
            f"{where}: sizes has {len(table)} names, more than the limit of {_MAX_SIZE_NAMES}; "
            "a model needs a few sizes"
        )
    out: dict[str, Any] = {}
    for name, number in table.items():
        _check_declared_name(name, "sizes", where)
        if number == "symbolic":
            out[name] = size(name)
            continue
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ParseError(
                f'{where}: sizes.{name} must be a positive integer or "symbolic", got '
                f"{_describe_value(number)}; write e.g. {name} = 3"
            )
        if number > MAX_SIZE:
            raise LimitError(
                f"{where}: sizes.{name} = {number:,} exceeds the limit of {MAX_SIZE:,}; use a "
                "smaller size"
            )
        out[name] = number
    return out


def _size_of(spec: Any, sizes: Mapping[str, Any], key: str, where: str) -> Any:
    """A size written in vectors or matrices: the name of a size, or an integer."""
    if isinstance(spec, str) and spec in sizes:
        return sizes[spec]
    if isinstance(spec, int) and not isinstance(spec, bool) and 1 <= spec <= MAX_SIZE:
        return spec
    known = ", ".join(sizes) or "none yet"
    raise ParseError(
        f"{where}: {key} must be the name of a size in sizes ({known}) or an integer from 1 to "
        f"{MAX_SIZE:,}, got {_describe_value(spec)}; add it to sizes, e.g. {_SIZES_EXAMPLE}"
    )


def _count(total: int, shape: tuple[Any, ...], where: str) -> int:
    if all(isinstance(d, int) for d in shape):
        total += math.prod(shape)
    if total > MAX_ENTRIES:
        raise LimitError(
            f"{where}: the vectors and matrices have more than {MAX_ENTRIES:,} entries together "
            "(the products of their sizes); use smaller sizes"
        )
    return total


def _declare(
    sizes: Mapping[str, Any],
    vectors: Any,
    matrices: Any,
    functions: Iterable[str],
    where: str,
) -> dict[str, Any]:
    """Vectors and parameter matrices by name, from the ``vectors`` and ``matrices`` tables."""
    vectors = _check_table(vectors, "vectors", 'vectors = { h = "n", x = "m" }', where)
    matrices = _check_table(matrices, "matrices", 'matrices = { W = ["n", "n"] }', where)
    declared = _declare_targets(sizes, vectors, {}, where)
    total = sum(
        int(v.size) for v in declared.values() if sp.sympify(v.size, strict=True).is_Integer
    )
    for name, spec in matrices.items():
        _check_declared_name(name, "matrices", where)
        if name in declared:
            raise ParseError(
                f"{where}: {name!r} is declared both in vectors and in matrices; give it one kind"
            )
        dims = [spec] if isinstance(spec, (str, int)) and not isinstance(spec, bool) else spec
        if not isinstance(dims, list) or not 1 <= len(dims) <= 2:
            raise ParseError(
                f"{where}: matrices.{name} must be a list of one or two sizes, got "
                f'{_describe_value(spec)}; write e.g. {name} = ["n", "m"]'
            )
        shape = tuple(_size_of(d, sizes, f"matrices.{name}", where) for d in dims)
        total = _count(total, shape, where)
        declared[name] = matrix(name, *shape)
    clash = sorted(set(declared) & set(functions))
    if clash:
        raise ParseError(
            f"{where}: {clash[0]!r} is declared as a function and as a vector or matrix; rename one"
        )
    return declared


def _declare_targets(
    sizes: Mapping[str, Any], vectors: Any, existing: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """The vectors of the ``vectors`` table; with a cell, the extra ones the loss reads."""
    vectors = _check_table(vectors, "vectors", 'vectors = { y = "n" }', where)
    out: dict[str, Any] = {}
    total = 0
    for name, spec in vectors.items():
        _check_declared_name(name, "vectors", where)
        if name in existing:
            raise ParseError(
                f"{where}: vectors.{name} names a quantity of the cell; declare only extra "
                'vectors the loss reads, such as targets: vectors = { y = "n" }'
            )
        n = _size_of(spec, sizes, f"vectors.{name}", where)
        total = _count(total, (n,), where)
        out[name] = time_vector(name, n)
    return out


def _declared_by(recurrence: Recurrence) -> dict[str, Any]:
    """The vectors and parameter matrices a recurrence is written with, by name."""
    out: dict[str, Any] = {}
    for eq in recurrence.display:
        for side in (eq.lhs, eq.rhs):
            if not isinstance(side, sp.Basic):
                continue
            for leaf in sorted(side.atoms(VectorAt, sp.MatrixSymbol), key=sp.default_sort_key):
                if isinstance(leaf, VectorAt):
                    out[leaf.name] = time_vector(leaf.name, leaf.shape[0])
                else:
                    out[leaf.name] = leaf
    return out


def _check_declared_used(declared: Mapping[str, Any], recurrence: Recurrence, where: str) -> None:
    used = _declared_by(recurrence)
    for name, value in declared.items():
        if isinstance(value, sp.MatrixSymbol) and name not in used:
            raise ParseError(
                f"{where}: matrices declares {name!r}, which no equation uses; remove it or "
                "correct its name in the equations"
            )


def _loss_functions() -> dict[str, Any]:
    """The per-step losses a loss string may call, from the public API."""
    import symrnn

    return {name: getattr(symrnn, name) for name in ("squared_error", "softmax_cross_entropy")}


# ------------------------------------------------------------------------------- cells
def cell_names() -> tuple[str, ...]:
    """The cells of :mod:`symrnn.cells` a model may name: functions in ``cells.__all__`` that
    need no arguments but the sizes ``n``, ``inputs`` and ``outputs``.

    >>> {"elman", "gru", "lstm"} <= set(cell_names())
    True
    """
    from . import cells

    out = []
    for name in getattr(cells, "__all__", ()):
        function = getattr(cells, name, None)
        if name.startswith("_") or not inspect.isfunction(function):
            continue
        required = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if all(p.name in _CELL_KEYWORDS for p in required):
            out.append(name)
    return tuple(out)


def _cell(value: Any, sizes: Mapping[str, Any], where: str) -> Recurrence:
    """The recurrence of the cell named ``value``, called with its sizes as keywords."""
    from . import cells

    names = cell_names()
    if not isinstance(value, str) or value not in names:
        raise ParseError(
            f"{where}: cell must be the name of a cell, one of {', '.join(names)}; got "
            f'{_describe_value(value)}; write e.g. cell = "lstm"'
        )
    function = getattr(cells, value)
    accepted = inspect.signature(function).parameters
    kwargs: dict[str, Any] = {}
    for name, number in sizes.items():
        keyword = CELL_SIZES.get(name)
        if keyword is None:
            raise ParseError(
                f"{where}: sizes.{name} means nothing to a cell; a cell's sizes are n (units), "
                "m (inputs) and k (outputs)"
            )
        if keyword not in accepted:
            raise ParseError(f"{where}: cell {value!r} takes no {keyword}; remove sizes.{name}")
        kwargs[keyword] = number
    if kwargs and "n" not in kwargs and "n" in accepted:
        raise ParseError(f"{where}: cell {value!r} needs sizes.n, the number of units")
    ints = [v for v in kwargs.values() if isinstance(v, int)]
    if "n" in kwargs and isinstance(kwargs["n"], int) and kwargs["n"] * max(ints) > MAX_ENTRIES:
        raise LimitError(
            f"{where}: cell {value!r} at sizes {dict(sizes)} has more than {MAX_ENTRIES:,} "
            "entries in one matrix (n times the largest of n, m and k); use smaller sizes"
        )
    try:
        recurrence = function(**kwargs)
    except SymrnnError as exc:
        raise type(exc)(f"{where}: cell {value!r}: {exc}") from exc
    if not isinstance(recurrence, Recurrence):
        raise ParseError(f"{where}: cell {value!r} does not make a recurrence; name another cell")
    return recurrence


# ------------------------------------------------------------------------------ weights
def _load_weights(value: Any, base: Path, model: Model, where: str) -> dict[str, np.ndarray]:
    """Parameter arrays from a ``.npz`` file, checked against the model's parameters."""
    if not isinstance(value, str) or not value or "\0" in value or len(value) > 4096:
        raise ParseError(
            f"{where}: params_file must be the path of a .npz file, got "
            f'{_describe_value(value)}; write e.g. params_file = "weights.npz"'
        )
    path = Path(value)
    path = path if path.is_absolute() else base / path
    label = f"{where}: params_file {_short_path(path)}"
    if path.suffix.lower() != ".npz":
        raise ParseError(f"{label} is not a .npz file; save the arrays with numpy.savez")
    if not model.recurrence.has_explicit_size:
        raise ParseError(f"{label} needs integer sizes; give numbers in sizes, not 'symbolic'")
    try:
        info = path.stat()
    except FileNotFoundError:
        raise SymrnnError(
            f"{label} does not exist; give its path relative to the model file"
        ) from None
    except OSError as exc:
        raise SymrnnError(f"{label} cannot be read: {exc.strerror}; check the path") from None
    if not stat.S_ISREG(info.st_mode):
        raise SymrnnError(f"{label} is not a regular file; give a .npz file")
    if info.st_size > MAX_WEIGHTS_BYTES:
        raise LimitError(
            f"{label} is larger than the limit of {MAX_WEIGHTS_BYTES:,} bytes; keep the arrays "
            "of this model only"
        )
    _check_archive(path, label)
    groups = model.recurrence_with_loss_params().param_groups
    out: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                out[key] = _check_array(key, _read_array(data, key, label), groups, model, label)
    except SymrnnError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        message = " ".join(str(exc).split())[:120]
        raise ParseError(f"{label} cannot be read ({message}); save it with numpy.savez") from None
    return out


def _check_archive(path: Path, label: str) -> None:
    """Count and measure the arrays before NumPy unpacks any (a small file may inflate)."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise ParseError(
            f"{label} is not a .npz archive; save the arrays with numpy.savez"
        ) from None
    if len(members) > MAX_WEIGHT_ARRAYS:
        raise LimitError(
            f"{label} holds {len(members):,} arrays, more than the limit of {MAX_WEIGHT_ARRAYS}"
        )
    if sum(m.file_size for m in members) > MAX_WEIGHTS_BYTES:
        raise LimitError(
            f"{label} unpacks to more than the limit of {MAX_WEIGHTS_BYTES:,} bytes; keep the "
            "arrays of this model only"
        )
    for member in members:
        if not member.filename.endswith(".npy"):
            raise ParseError(
                f"{label} holds {_quote_key(member.filename)}, which is not a NumPy array; save "
                "the arrays with numpy.savez"
            )


def _read_array(data: Any, key: str, label: str) -> np.ndarray:
    try:
        array = data[key]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ParseError(
                f"{label}: array {_quote_key(key)} holds pickled Python objects, which symrnn "
                "never loads; save plain numeric arrays"
            ) from None
        raise
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise ParseError(
            f"{label}: array {_quote_key(key)} has dtype {array.dtype}, not numbers; save real "
            "numeric arrays"
        )
    return array


def _check_array(
    key: str, array: np.ndarray, groups: Mapping[str, Any], model: Model, label: str
) -> np.ndarray:
    group = groups.get(key)
    if group is None:
        names = ", ".join(groups) or "none"
        raise ParseError(
            f"{label} has the array {_quote_key(key)}, which is not a parameter of the model "
            f"(its parameters: {names}); remove it or correct its name"
        )
    entries = [str(e) for e in group] if isinstance(group, sp.MatrixBase) else [key]
    if key in model.params or any(e in model.params for e in entries):
        raise ParseError(f"{label} and [params] both give {key}; keep one of them")
    shape = tuple(group.shape) if isinstance(group, sp.MatrixBase) else ()
    accepted = {shape, (math.prod(shape),)} if len(shape) < 2 or shape[1] == 1 else {shape}
    if array.shape not in accepted:
        raise ShapeError(
            f"{label}: array {_quote_key(key)} has shape {tuple(array.shape)}, but parameter "
            f"{key} has shape {shape}; save it with that shape"
        )
    values = np.asarray(array, dtype=float).reshape(shape)
    if not np.all(np.isfinite(values)) or np.any(np.abs(values) > 1e300):
        raise ParseError(
            f"{label}: array {_quote_key(key)} has values that are not finite numbers of "
            "moderate size; save finite values"
        )
    values.setflags(write=False)
    return values
