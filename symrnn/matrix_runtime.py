# ---------------------------------------------------------------------------------------------
# Runtime of a symrnn-generated matrix-level module (imports only NumPy).
#
# symrnn copies this file's text below the generated tables and step functions, so the same code
# runs inside ``sr.lambdify`` and in a standalone module written by ``sr.codegen``.  Every value
# is an array in row layout: a vector of size n for B sequences is (B, n), a scalar (B,).  The
# generated part defines:
#
#   SIZES        names of the symbolic sizes (read from the arrays at each call)
#   PARAMS       (name, shape) of each parameter; a shape holds integers and size names
#   INPUTS       (name, shape) of each input of the recurrence, then TARGETS the loss reads
#   QUANTITIES   (name, shape) of each defined quantity, evaluation order
#   QUANTITY_INDEX  name -> position of a quantity in what ``step`` returns
#   STATES       (name, shape, largest lag) of each state
#   INPUT_LAG    largest lag of an input; input arrays hold times 1 - INPUT_LAG .. T
#   STEP_ARGS    ("state", name, lag) / ("input", name, lag) / ("time", "t", 0) after the params
#   LOSS_ARGS    the same for the loss and the adjoint step (targets are inputs here)
#   ADJ_OUT      (state, lag) that each adjoint-step contribution goes to
#   OUTER        the parameter of each (g, a) pair adjoint_step returns: its gradient gets Σ g aᵀ
#   step(*P, *args) -> saved values (quantities at t first), loss_step, adjoint_step
# ---------------------------------------------------------------------------------------------
import numpy

#: Batches up to this size sum matrix gradients once over all steps (see value_and_grad).
DEFER_BATCH = 8


class ArgumentError(ValueError):
    """A missing or mis-shaped argument (the message names it and the expected shape)."""


def outer(g, a):
    """Sum over the batch of the outer products g aᵀ (the gradient of a matrix parameter)."""
    if g.ndim == 2 and a.ndim == 2:
        return g.T @ a
    if g.ndim == 2:
        g = numpy.add.reduce(g, 0)
    if a.ndim == 2:
        a = numpy.add.reduce(a, 0)
    return numpy.multiply.outer(g, a)


def dot(a, b):
    """aᵀ b for every sequence."""
    if a.ndim == 2 and b.ndim == 2:
        return numpy.add.reduce(a * b, -1)  # einsum's call costs more at these sizes
    return a @ b if b.ndim == 1 else b @ a


def logsumexp(o):
    m = numpy.max(o, axis=-1, keepdims=True)
    return numpy.log(numpy.add.reduce(numpy.exp(o - m), -1)) + m[..., 0]


def softmax(o):
    e = numpy.exp(o - numpy.max(o, axis=-1, keepdims=True))
    return e / numpy.add.reduce(e, -1)[..., None]


def xent(o, y):
    """Softmax cross-entropy Σ_i y_i (log Σ_j e^{o_j} − o_i), computed stably."""
    return numpy.add.reduce(y * (logsumexp(o)[..., None] - o), -1)


def xent_do(o, y):
    """Its gradient in o: softmax(o) Σ_i y_i − y (ŷ − y for a target distribution)."""
    return softmax(o) * numpy.add.reduce(y, -1)[..., None] - y


def xent_dy(o):
    """Its gradient in y: log Σ_j e^{o_j} − o."""
    return logsumexp(o)[..., None] - o


def _array(what, value, dtype):
    if value is None or isinstance(value, (str, bytes)):
        raise ArgumentError(f"{what}: expected numbers, got {value!r}")
    try:
        arr = numpy.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{what}: cannot convert to a {dtype} array ({exc})") from None
    if arr.dtype.kind not in "fc":
        raise ArgumentError(f"{what}: expected numbers, got an array of {arr.dtype}")
    return arr


def _bind(what, got, spec, sizes):
    """Check a shape against its spec, binding symbolic sizes on first sight."""
    if len(got) != len(spec):
        raise ArgumentError(f"{what} has shape {tuple(got)}, expected {_show(spec, sizes)}")
    for n, s in zip(got, spec, strict=False):
        if isinstance(s, str):
            if sizes.setdefault(s, n) != n:
                raise ArgumentError(
                    f"{what} has shape {tuple(got)}, expected {_show(spec, sizes)} "
                    f"({s} = {sizes[s]} from the other arguments)"
                )
        elif n != s:
            raise ArgumentError(f"{what} has shape {tuple(got)}, expected {_show(spec, sizes)}")


def _show(spec, sizes):
    return (
        "("
        + ", ".join(str(sizes.get(s, s)) if isinstance(s, str) else str(s) for s in spec)
        + (",)" if len(spec) == 1 else ")")
    )


def _params(params, dtype, sizes):
    params = dict(params or {})
    values, given = [], {}
    for name, spec in PARAMS:
        if name not in params:
            names = ", ".join(n for n, _ in PARAMS)
            raise ArgumentError(f"parameter {name!r} is missing; the parameters are {names}")
        arr = _array(f"parameter {name!r}", params.pop(name), dtype)
        given[name] = arr.shape
        if len(spec) == 1 and arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]  # a column (n, 1) given for a vector (n,)
        elif len(spec) == 2 and spec[1] == 1 and arr.ndim == 1:
            arr = arr[:, None]  # and a vector (n,) for a one-column matrix (n, 1)
        _bind(f"parameter {name!r}", arr.shape, spec, sizes)
        values.append(arr)
    if params:
        raise ArgumentError(f"unknown parameter(s) {', '.join(sorted(params))}")
    return values, given


def _prepare(params, inputs, init, steps, dtype, targets=True):
    sizes = {}
    P, given = _params(params, dtype, sizes)
    inputs = dict(inputs or {})
    X, length, batch = {}, None, None
    for name, spec in INPUTS + TARGETS:
        if name not in inputs:
            if not targets and any(name == n for n, _ in TARGETS):
                continue
            raise ArgumentError(
                f"input {name!r} is missing; give an array shaped (T{', n' * len(spec)}) or "
                f"(T, batch{', n' * len(spec)})"
            )
        arr = _array(f"input {name!r}", inputs.pop(name), dtype)
        if arr.ndim not in (1 + len(spec), 2 + len(spec)):
            raise ArgumentError(
                f"input {name!r} has shape {arr.shape}; expected (T{', n' * len(spec)}) or "
                f"(T, batch{', n' * len(spec)})"
            )
        _bind(f"input {name!r}", arr.shape[arr.ndim - len(spec) :], spec, sizes)
        b = arr.shape[1] if arr.ndim == 2 + len(spec) else None
        if batch is None:
            batch = b
        elif b != batch:
            raise ArgumentError(f"input {name!r} has batch {b}, other inputs {batch}")
        if length is None:
            length = arr.shape[0]
        elif arr.shape[0] != length:
            raise ArgumentError(f"input {name!r} has {arr.shape[0]} time steps, others {length}")
        X[name] = arr
    if inputs:
        raise ArgumentError(f"unknown input(s) {', '.join(sorted(inputs))}")
    if length is not None:
        T = length - INPUT_LAG
        if steps is not None and steps != T:
            raise ArgumentError(f"steps={steps} but the inputs cover {T} steps")
    elif steps is not None:
        T = steps
    else:
        raise ArgumentError("this recurrence has no inputs: give the number of steps, steps=T")
    if isinstance(T, bool) or not isinstance(T, (int, numpy.integer)) or T < 1:
        raise ArgumentError(f"the inputs must cover at least {1 + INPUT_LAG} time steps")
    init = dict(init or {})
    H = {}
    for name, spec, order in STATES:
        arr = _array(f"init {name!r}", init.pop(name, 0.0), dtype)
        parts = [arr] * order
        if order > 1 and arr.ndim >= 1 + len(spec) and arr.shape[0] == order:
            parts = list(arr)
        for i, part in enumerate(parts):
            tail = part.shape[part.ndim - len(spec) :] if part.ndim >= len(spec) else ()
            if part.ndim > len(spec):
                b = part.shape[0]
                if batch is None:
                    batch = b
                elif b != batch:
                    raise ArgumentError(f"init {name!r} has batch {b}, the inputs {batch}")
            if part.ndim >= len(spec) and part.ndim > 0:
                _bind(f"init {name!r}", tail, spec, sizes)
            H[(name, -i)] = part
    if init:
        raise ArgumentError(f"unknown initial state(s) {', '.join(sorted(init))}")
    missing = [s for s in SIZES if s not in sizes]
    if missing:
        raise ArgumentError(f"cannot tell size {missing[0]} from the arguments; give its arrays")
    single = batch is None
    B = 1 if single else batch
    for name, arr in X.items():
        X[name] = arr[:, None] if single else arr
    for key, part in H.items():
        spec = next(s for n, s, _ in STATES if n == key[0])
        shape = (B,) + tuple(sizes.get(d, d) if isinstance(d, str) else d for d in spec)
        H[key] = numpy.broadcast_to(part, shape)
    return P, X, H, T, B, single, given


def _read(X, H, saved, spec, k):
    kind, name, lag = spec
    if kind == "time":
        return float(k)
    if kind == "input":
        return X[name][k - lag - 1 + INPUT_LAG]
    j = k - lag
    return saved[j - 1][QUANTITY_INDEX[name]] if j >= 1 else H[(name, j)]


def _forward(P, X, H, T):
    saved = []
    for k in range(1, T + 1):
        saved.append(step(*P, *[_read(X, H, saved, a, k) for a in STEP_ARGS]))
    return saved


def _dtype(dtype):
    dt = numpy.dtype(dtype)
    if dt.kind not in "fc":
        raise ArgumentError(f"dtype must be a floating or complex type, got {dt}")
    return dt


def forward(params, inputs=None, init=None, steps=None, dtype="float64"):
    """States and outputs at t = 1..T, as arrays shaped (T, [batch], [n]) by name."""
    P, X, H, T, B, single, _ = _prepare(params, inputs, init, steps, _dtype(dtype), False)
    saved = _forward(P, X, H, T)
    out = {}
    for i, (name, _) in enumerate(QUANTITIES):
        arr = numpy.stack([numpy.broadcast_to(s[i], (B,) + numpy.shape(s[i])[1:]) for s in saved])
        out[name] = arr[:, 0] if single else arr
    return out


def _check_loss():
    if loss_step is None:
        raise ArgumentError("no loss was compiled; pass loss=... to sr.lambdify / sr.codegen")


def loss(params, inputs=None, init=None, steps=None, dtype="float64"):
    """The loss of each sequence: a scalar, or an array shaped (batch,)."""
    _check_loss()
    P, X, H, T, B, single, _ = _prepare(params, inputs, init, steps, _dtype(dtype))
    saved = _forward(P, X, H, T)
    total = numpy.zeros(B, dtype=_dtype(dtype))
    for k in range(1, T + 1):
        total = total + loss_step(*P, *[_read(X, H, saved, a, k) for a in LOSS_ARGS], *saved[k - 1])
    return total[0] if single else total


def value_and_grad(params, inputs=None, init=None, steps=None, dtype="float64", init_grad=False):
    """The loss summed over the batch and its gradient, shaped like the parameters.

    With ``init_grad=True`` the gradient also holds the initial states under ``"init"``.
    """
    _check_loss()
    dt = _dtype(dtype)
    P, X, H, T, B, single, given = _prepare(params, inputs, init, steps, dt)
    saved = _forward(P, X, H, T)
    G = [numpy.zeros(p.shape, dtype=dt) for p in P]
    value = numpy.zeros(B, dtype=dt)
    ones = numpy.ones(B, dtype=dt)
    zeros = {name: numpy.zeros(H[(name, 0)].shape, dtype=dt) for name, _, _ in STATES}
    pending = {}
    # Matrix gradients Σ_t Σ_b g aᵀ: for a small batch one product over all steps at the end
    # (T·B rows) beats T thin ones; for a large batch each step's product is already large.
    defer = B <= DEFER_BATCH
    terms = [([], []) for _ in OUTER]
    for k in range(T, 0, -1):
        args = [_read(X, H, saved, a, k) for a in LOSS_ARGS]
        carries = [pending.pop((name, k), zeros[name]) for name, _, _ in STATES]
        loss_k, outs, pairs = adjoint_step(G, ones, *P, *args, *saved[k - 1], *carries)
        value += loss_k
        for (name, lag), v in zip(ADJ_OUT, outs, strict=False):
            key = (name, k - lag)
            pending[key] = pending[key] + v if key in pending else v
        for j, index in enumerate(OUTER):
            g, a = pairs[2 * j], pairs[2 * j + 1]
            if defer and g.ndim == 2 and a.ndim == 2:
                terms[j][0].append(g)
                terms[j][1].append(a)
            else:
                G[index] += outer(g, a)
    for (gs, as_), index in zip(terms, OUTER, strict=True):
        if gs:
            G[index] += numpy.concatenate(gs).T @ numpy.concatenate(as_)
    grads = {name: g.reshape(given[name]) for (name, _), g in zip(PARAMS, G, strict=False)}
    if init_grad:
        grads["init"] = _init_grads(pending, zeros, single)
    return numpy.add.reduce(value), grads


def _init_grads(pending, zeros, single):
    out = {}
    for name, _, order in STATES:
        parts = [pending.get((name, -i), zeros[name]) for i in range(order)]
        parts = [p[0] if single else p for p in parts]
        out[name] = parts[0] if order == 1 else numpy.stack(parts)
    return out
