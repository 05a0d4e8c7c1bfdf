"""symrnn: derive the mathematics of recurrent computations exactly.

Write a recurrence with SymPy, unfold it into a chain of per-step equations, differentiate it
through time, turn it into NumPy code, check every form against the others, and write it as LaTeX
and computational graphs.  This file is the public API; every name below is documented in
``docs/``.

>>> import sympy as sp, symrnn as sr
>>> h, x = sp.symbols("h x", cls=sp.Function)
>>> w = sp.Symbol("w")
>>> rnn = sr.Recurrence(sp.Eq(h(sr.t), sp.tanh(w*h(sr.t - 1) + x(sr.t))))
>>> sr.unfold(rnn, 2).closed_form(2)
tanh(w*tanh(w*h(0) + x(1)) + x(2))
"""

from . import cells, losses
from .diff import (
    BPTT,
    Adjoint,
    bptt,
    grad,
    jacobian,
    softmax_cross_entropy,
    squared_error,
    total_loss,
    transition_jacobian,
)
from .errors import (
    LimitError,
    NoClosedForm,
    ParseError,
    RecurrenceError,
    ShapeError,
    SymrnnError,
    ToolMissing,
    UnfoldError,
)
from .flow import GradientFlow, gradient_flow, plot_gradient_flows
from .functions import relu, sigmoid, softmax, softplus, tanh

# Constants of the modules whose names the verbs above take (symrnn.unfold is the function):
# reachable as symrnn.MAX_STEPS, symrnn.NODE_KINDS, ...
from .graph import EDGE_STYLES, MAX_DRAWN_STEPS, NODE_KINDS, Edge, Graph, Node, graph  # noqa: E402
from .latex import Derivation, derivation, latex
from .matrices import matrix, size, vector
from .notation import init_printing, t
from .numeric import Compiled, codegen, lambdify
from .ops import dot, matmul, reduce_sum, sqr
from .recurrence import Recurrence
from .solve import MAX_KERNEL_LENGTH, MAX_SOLVE_SIZE, Solution, kernel, solve  # noqa: E402
from .unfold import MAX_CLOSED_FORM_NODES, MAX_CLOSED_FORM_STEPS, MAX_STEPS, Unfolded, unfold  # noqa: E402
from .verify import (  # noqa: E402
    MAX_COMPARED_PARAMETERS,
    MAX_COMPONENT_PARAMETERS,
    MAX_TRIALS,
    MAX_VERIFY_QUANTITIES,
    MAX_VERIFY_STEPS,
    Report,
    Row,
    verify,
)

__version__ = "0.1.0"

__all__ = [
    # writing recurrences
    "t",
    "Recurrence",
    "vector",
    "matrix",
    "size",
    "cells",
    "losses",
    "sigmoid",
    "relu",
    "softplus",
    "softmax",
    "tanh",
    # unfolding and closed forms
    "unfold",
    "Unfolded",
    "solve",
    "Solution",
    "kernel",
    # differentiation through time
    "grad",
    "bptt",
    "BPTT",
    "Adjoint",
    "jacobian",
    "transition_jacobian",
    "total_loss",
    "squared_error",
    "softmax_cross_entropy",
    "gradient_flow",
    "GradientFlow",
    "plot_gradient_flows",
    # numeric code
    "lambdify",
    "Compiled",
    "codegen",
    # verification
    "verify",
    "Report",
    "Row",
    # notes and drawings
    "init_printing",
    "latex",
    "derivation",
    "Derivation",
    "graph",
    "Graph",
    "Node",
    "Edge",
    "dot",
    "matmul",
    "reduce_sum",
    "sqr",
    # limits and tables of the modules the verbs are named after
    "MAX_STEPS",
    "MAX_CLOSED_FORM_STEPS",
    "MAX_CLOSED_FORM_NODES",
    "MAX_SOLVE_SIZE",
    "MAX_KERNEL_LENGTH",
    "MAX_VERIFY_STEPS",
    "MAX_VERIFY_QUANTITIES",
    "MAX_TRIALS",
    "MAX_COMPONENT_PARAMETERS",
    "MAX_COMPARED_PARAMETERS",
    "MAX_DRAWN_STEPS",
    "NODE_KINDS",
    "EDGE_STYLES",
    # errors
    "SymrnnError",
    "RecurrenceError",
    "ParseError",
    "UnfoldError",
    "NoClosedForm",
    "ShapeError",
    "LimitError",
    "ToolMissing",
]
