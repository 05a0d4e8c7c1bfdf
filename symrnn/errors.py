"""The exceptions symrnn raises.

Every message is one line that names the object and the part at fault, what was expected, what
was found, and the remedy.  The command line prints ``str(error)`` and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "SymrnnError",
    "RecurrenceError",
    "ParseError",
    "UnfoldError",
    "NoClosedForm",
    "ShapeError",
    "LimitError",
    "ToolMissing",
]


class SymrnnError(ValueError):
    """Base class of every error symrnn raises on purpose."""


class RecurrenceError(SymrnnError):
    """The equations do not describe a well-formed recurrence."""


class ParseError(SymrnnError):
    """A string could not be read by the whitelist parser."""


class UnfoldError(SymrnnError):
    """A request on an unfolded chain is out of range or ill-posed."""


class NoClosedForm(SymrnnError):
    """``solve`` found no closed form in symbolic t; the message says why."""


class ShapeError(SymrnnError):
    """A numeric argument is missing or has the wrong shape."""


class LimitError(SymrnnError):
    """An input exceeds one of symrnn's stated limits (steps, exponent, nesting, file size)."""


class ToolMissing(SymrnnError):
    """An optional external program (Graphviz ``dot``, ``pdflatex``) is not installed."""
