"""symrnn: derive the mathematics of recurrent computations exactly."""

from . import cells
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
from .functions import relu, sigmoid, softmax, softplus
from .matrices import matrix, vector
from .notation import t
from .flow import GradientFlow, gradient_flow, plot_gradient_flows
from .graph import Edge, Graph, Node, graph
from .latex import Derivation, derivation, latex
from .numeric import Compiled, codegen, lambdify
from .ops import dot, matmul, reduce_sum, sqr
from .recurrence import Recurrence
from .solve import Solution, kernel, solve
from .unfold import Unfolded, unfold

__version__ = "0.1.0"
