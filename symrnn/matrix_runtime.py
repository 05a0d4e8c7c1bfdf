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
#   ORDERS       name -> largest lag of each state
#   INPUT_LAG    largest lag of an input; input arrays hold times 1 - INPUT_LAG .. T
#   PRE_ARGS     ("input", name, lag) of precompute, after the params: whole stretches of time
#   STEP_ARGS    ("pre", j, 0) / ("state", name, lag) / ("input", name, lag) / ("time", "t", 0)
#                after the params: precompute's j-th value, a state, an input at step t
#   LOSS_ARGS    the same for loss_step, and ("saved", j, 0): the j-th value step returned
#   ADJ_PRE_ARGS the same for adjoint_precompute (after _one and the params), stretches of time
#   ADJ_ARGS     the same for adjoint_step (after _G, _one, the params; before the adjoint
#                carried from t + 1 for each state)
#   ADJ_OUT      (state, lag) that each adjoint-step contribution goes to
#   OUTER        (parameter, spec of a or None) of each term Σ g aᵀ of a gradient: adjoint_step
#                returns g, and a too when the spec is None
#   SUMS         the parameter of each g returned after the pairs: its gradient gets Σ g
#   STEP_GRADS   the parameters whose gradient adjoint_step adds to _G itself
#   precompute(*P, *args) -> values known before the loop, for stretches of steps (or None)
#   step(*P, *args) -> saved values (quantities at t first)
#   loss_step(*P, *args) -> the loss at t (of a stretch of steps when adjoint_precompute is set)
#   adjoint_precompute(_one, *P, *args) -> (loss, values for adjoint_step), stretches of time
#   adjoint_step(_G, _one, *P, *args, *carries) -> (adjoints of states, (g, [a], …, g, …))
# ---------------------------------------------------------------------------------------------
import numpy

#: The values computed for many steps at once (precomputed terms, gradient terms summed in one
#: product) cover all steps for batches up to SMALL_BATCH sequences; for larger batches,
#: stretches of steps whose quantities and inputs hold at most STRETCH numbers (one step at a
#: time for a large batch or a large cell), which bounds the memory they take beside the
#: stored states.
SMALL_BATCH = 8
STRETCH = 16384


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
    width = sum(int(numpy.prod([sizes.get(d, d) for d in spec])) for _, spec in QUANTITIES + INPUTS)
    for key, part in H.items():
        spec = next(s for n, s, _ in STATES if n == key[0])
        shape = (B,) + tuple(sizes.get(d, d) if isinstance(d, str) else d for d in spec)
        H[key] = numpy.broadcast_to(part, shape)
    size = T if B <= SMALL_BATCH else max(1, min(T, STRETCH // (B * max(width, 1))))
    stretches = [(k0, min(T, k0 + size)) for k0 in range(0, T, size)]
    return P, X, H, T, B, single, given, stretches


def _history(H):
    """Each state's values by time, from its initial values on: time j at j + order - 1."""
    return {name: [H[(name, j)] for j in range(1 - order, 1)] for name, _, order in STATES}


def _columns(specs, X, hist, pre, saved, k0, k1, live=None):
    """Each argument's values at the steps k0 + 1 .. k1, one sequence per argument.

    ``live`` gives a state's values in the forward pass: an iterator over its history, which
    the forward loop extends as it goes (a list iterator yields the items appended after its
    creation), one for all stretches.
    """
    out = []
    for kind, name, lag in specs:
        if kind == "pre":
            out.append(pre[name])
        elif kind == "input":
            j = k0 + INPUT_LAG - lag
            out.append(X[name][j : j + k1 - k0])
        elif kind == "state" and live is not None:
            out.append(live[name, lag])
        elif kind == "state":
            j = k0 + ORDERS[name] - lag
            out.append(hist[name][j : j + k1 - k0])
        elif kind == "saved":
            out.append([s[name] for s in saved[k0:k1]])
        else:
            out.append([float(k) for k in range(k0 + 1, k1 + 1)])
    return out


def _rows(columns, steps):
    """The arguments of each step (an empty tuple each when there are none)."""
    return zip(*columns, strict=False) if columns else [()] * steps


def _stacked(specs, X, hist, saved, k0, k1):
    """Each argument for the steps k0 + 1 .. k1 at once: the rows of every step in turn.

    A (B, n) value of each step becomes one (steps·B, n) array: the precompute functions work
    row by row, and a matrix product over it is one BLAS call.
    """
    if k1 == k0 + 1:  # one step (a large batch): its own arrays
        return [_at(spec, X, hist, saved, k0 + 1) for spec in specs]
    out = []
    columns = _columns(specs, X, hist, (), saved, k0, k1)
    for c, (kind, _, _) in zip(columns, specs, strict=True):
        if kind == "input":
            out.append(c.reshape((-1,) + c.shape[2:]))
        else:
            out.append(c[0] if len(c) == 1 else numpy.concatenate(c))
    return out


def _at(spec, X, hist, saved, k):
    """One argument at step k."""
    kind, name, lag = spec
    if kind == "input":
        return X[name][k + INPUT_LAG - lag - 1]
    if kind == "state":
        return hist[name][k + ORDERS[name] - lag - 1]
    return saved[k - 1][name]


def _by_step(values, steps):
    """Precomputed (steps·B, …) arrays as (steps, B, …): one step's rows at each index."""
    return [v.reshape((steps, -1) + v.shape[1:]) for v in values]


def _forward(P, X, H, stretches):
    hist = _history(H)
    tracks = [(hist[name], QUANTITY_INDEX[name]) for name, _, _ in STATES]
    live = {}
    for kind, name, lag in STEP_ARGS:
        if kind == "state":  # the value at time 1 - lag, at index order - lag, comes first
            live[name, lag] = values = iter(hist[name])
            for _ in range(ORDERS[name] - lag):
                next(values)
    saved = []
    for k0, k1 in stretches:
        pre = ()
        if precompute is not None:
            pre = _by_step(precompute(*P, *_stacked(PRE_ARGS, X, hist, (), k0, k1)), k1 - k0)
        rows = _rows(_columns(STEP_ARGS, X, hist, pre, (), k0, k1, live), k1 - k0)
        for _, row in zip(range(k0, k1), rows, strict=False):  # states alone never end
            out = step(*P, *row)
            saved.append(out)
            for h, i in tracks:
                h.append(out[i])
    return saved, hist


def _dtype(dtype):
    dt = numpy.dtype(dtype)
    if dt.kind not in "fc":
        raise ArgumentError(f"dtype must be a floating or complex type, got {dt}")
    return dt


def forward(params, inputs=None, init=None, steps=None, dtype="float64"):
    """States and outputs at t = 1..T, as arrays shaped (T, [batch], [n]) by name."""
    P, X, H, _, B, single, _, stretches = _prepare(
        params, inputs, init, steps, _dtype(dtype), False
    )
    saved, _ = _forward(P, X, H, stretches)
    out = {}
    for i, (name, _) in enumerate(QUANTITIES):
        arr = numpy.stack([numpy.broadcast_to(s[i], (B,) + numpy.shape(s[i])[1:]) for s in saved])
        out[name] = arr[:, 0] if single else arr
    return out


def _check_loss():
    if loss_step is None:
        raise ArgumentError("no loss was compiled; pass loss=... to sr.lambdify / sr.codegen")


def _per_sequence(values, steps):
    """The sum over steps of precomputed losses (steps·B of them, or one value for all)."""
    if numpy.ndim(values) == 0:
        return values * steps
    return values if steps == 1 else numpy.add.reduce(values.reshape(steps, -1), 0)


def loss(params, inputs=None, init=None, steps=None, dtype="float64"):
    """The loss of each sequence: a scalar, or an array shaped (batch,)."""
    _check_loss()
    P, X, H, T, B, single, _, stretches = _prepare(params, inputs, init, steps, _dtype(dtype))
    saved, hist = _forward(P, X, H, stretches)
    total = numpy.zeros(B, dtype=_dtype(dtype))
    if adjoint_precompute is not None:  # loss_step takes whole stretches of time
        for k0, k1 in stretches:
            args = _stacked(LOSS_ARGS, X, hist, saved, k0, k1)
            total = total + _per_sequence(loss_step(*P, *args), k1 - k0)
    else:
        for row in _rows(_columns(LOSS_ARGS, X, hist, (), saved, 0, T), T):
            total = total + loss_step(*P, *row)
    return total[0] if single else total


def value_and_grad(params, inputs=None, init=None, steps=None, dtype="float64", init_grad=False):
    """The loss summed over the batch and its gradient, shaped like the parameters.

    With ``init_grad=True`` the gradient also holds the initial states under ``"init"``.
    """
    _check_loss()
    dt = _dtype(dtype)
    P, X, H, T, B, single, given, stretches = _prepare(params, inputs, init, steps, dt)
    saved, hist = _forward(P, X, H, stretches)
    G = [numpy.zeros(p.shape, dtype=dt) for p in P]
    # Gradients no term has reached yet: the first is stored, not added (adding it to a fresh
    # array of zeros would write every page of that array once more).
    fresh = set(range(len(P))) - set(STEP_GRADS)
    value = numpy.zeros(B, dtype=dt)
    ones = numpy.ones(B, dtype=dt)
    zeros = {name: numpy.zeros(H[(name, 0)].shape, dtype=dt) for name, _, _ in STATES}
    # The adjoint of each state by time (time j at j + order - 1), summed as the steps add to it;
    # each state's iterator from the end reads the adjoint carried into step T, T - 1, ...
    adjoints = {name: [zeros[name]] * (T + order) for name, _, order in STATES}
    carries = [reversed(adjoints[name]) for name, _, _ in STATES]
    outs = [(adjoints[name], ORDERS[name] - 1 - lag, zeros[name]) for name, lag in ADJ_OUT]
    for k0, k1 in reversed(stretches):
        if adjoint_precompute is not None:
            args = _stacked(ADJ_PRE_ARGS, X, hist, saved, k0, k1)
            values, *pre = adjoint_precompute(numpy.ones((k1 - k0) * B, dtype=dt), *P, *args)
            value += _per_sequence(values, k1 - k0)
            pre = _by_step(pre, k1 - k0)
        else:
            pre = ()
            for row in _rows(_columns(LOSS_ARGS, X, hist, (), saved, k0, k1), k1 - k0):
                value += loss_step(*P, *row)
        columns = _columns(ADJ_ARGS, X, hist, pre, saved, k0, k1)
        rows = zip(*[c[::-1] for c in columns], *carries, strict=False)
        terms = []
        for k, row in zip(range(k1, k0, -1), rows, strict=False):
            adj, pairs = adjoint_step(G, ones, *P, *row)
            for (a, o, zero), v in zip(outs, adj, strict=True):
                a[k + o] = v if a[k + o] is zero else a[k + o] + v
            terms.append(pairs)
        # Matrix gradients Σ_t Σ_b g aᵀ of the stretch in one product over all its rows: one
        # large product beats many thin ones, and a stretch bounds the memory of the terms.
        if terms[0]:
            _add_terms(G, fresh, list(zip(*terms[::-1], strict=True)), X, hist, saved, k0, k1)
        for name, _, order in STATES:  # adjoints this stretch has read: no longer needed
            adjoints[name][k0 + order : k1 + order] = [zeros[name]] * (k1 - k0)
    grads = {name: g.reshape(given[name]) for (name, _), g in zip(PARAMS, G, strict=False)}
    if init_grad:
        grads["init"] = _init_grads(adjoints, single)
    return numpy.add.reduce(value), grads


def _add_terms(G, fresh, columns, X, hist, saved, k0, k1):
    """Add Σ g aᵀ for each OUTER pair and Σ g for each SUMS term over the steps k0 + 1 .. k1.

    ``columns`` holds what adjoint_step returned, by step: g (and a, unless OUTER says where the
    runtime finds it) for each pair, then g for each sum.
    """
    rows = {}  # the steps' g stacked once, though several terms read it
    factors = {}  # and each a (x(t) for the input weights of every gate) once

    def add(index, term):
        if index in fresh:
            G[index] = term
            fresh.discard(index)
        else:
            G[index] += term

    def stacked(arrays):
        if id(arrays[0]) not in rows:
            rows[id(arrays[0])] = _concat(arrays)
        return rows[id(arrays[0])]

    columns = iter(columns)
    for index, spec in OUTER:
        gs = next(columns)
        if spec is not None:
            if spec not in factors:
                factors[spec] = _stacked([spec], X, hist, saved, k0, k1)[0]
            add(index, stacked(gs).T @ factors[spec])
            continue
        as_ = next(columns)
        if gs[0].ndim == 2 and as_[0].ndim == 2:
            add(index, stacked(gs).T @ _concat(as_))
        else:
            for g, a in zip(gs, as_, strict=True):
                add(index, outer(g, a))
    totals = {}  # Σ g of a g that several biases share (b_r and b_hr) summed once
    for index in SUMS:
        gs = next(columns)
        if id(gs[0]) not in totals:
            totals[id(gs[0])] = numpy.add.reduce(stacked(gs), 0)
            add(index, totals[id(gs[0])])
        else:
            add(index, totals[id(gs[0])].copy())  # (G entries must not share an array)


def _concat(arrays):
    return arrays[0] if len(arrays) == 1 else numpy.concatenate(arrays)


def _init_grads(adjoints, single):
    out = {}
    for name, _, order in STATES:
        parts = [adjoints[name][order - 1 - i] for i in range(order)]
        parts = [p[0] if single else p for p in parts]
        out[name] = parts[0] if order == 1 else numpy.stack(parts)
    return out
