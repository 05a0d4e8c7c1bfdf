# ---------------------------------------------------------------------------------------------
# Runtime of a symrnn-generated module (imports only NumPy).
#
# symrnn copies this file's text below the generated tables and step functions, so the same
# code runs inside ``sr.lambdify`` and in a standalone module written by ``sr.codegen``.  It
# expects these module globals from the generated part:
#
#   MODE           "scan" or "unrolled"
#   STEPS          number of steps (unrolled) or None (scan: any T)
#   INPUT_LAG      largest lag of an input; input arrays hold times 1 - INPUT_LAG .. T
#   QUANTITIES     component names of the defined quantities, evaluation order
#   STATES         (component, max lag) of each state
#   PARAM_GROUPS   (name, shape, components) of each parameter (shape () for a scalar)
#   INPUT_GROUPS   (name, components, is_vector) of each input (recurrence inputs, then targets)
#   OUTPUT_GROUPS  (name, components, is_vector) of each defined quantity
#   STATE_GROUPS   (name, components, is_vector) of each state
#   PARAM_ORDER    parameter components in the order the step functions unpack them (P)
#   TARGET_NAMES   input groups that only the loss reads (targets such as y)
#   STEP_ARGS      ("state", component, lag) or ("input", component, lag), after P; a defined
#                  quantity at the same time is ("state", component, 0)
#   LOSS_ARGS      the same, for the per-step loss
#   ADJ_ARGS       the same, plus ("carry", component, 0): dL/dh(t) carried back from later steps,
#                  and ("count", "_n", 0): the number of sequences (its gradients are batch sums);
#                  ("time", "t", 0) passes the step number k to updates that use t itself
#   ADJ_OUT        (state component, lag) that each adjoint-step contribution goes to
#   step, loss_step, adjoint_step (NumPy) and step_scalar, adjoint_step_scalar (math module, for
#   one sequence of Python floats, or None)                                     (scan mode)
#   unrolled_forward, unrolled_value_and_grad                                   (unrolled mode)
#   HAS_LOSS       whether a loss was compiled
# ---------------------------------------------------------------------------------------------


class ArgumentError(ValueError):
    """A missing or mis-shaped argument (the message names it and the expected shape)."""


def _as_array(name, value, dtype):
    # Only numbers: numpy would read None as nan, "0.5" as 0.5 and drop an imaginary part.
    kinds = "iuf" + ("c" if numpy.dtype(dtype).kind == "c" else "")
    try:
        arr = numpy.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ArgumentError(f"{name}: cannot convert to a {dtype} array ({exc})") from None
    if arr.dtype.kind not in kinds:
        what = "complex numbers" if arr.dtype.kind == "c" else f"{type(value).__name__}"
        hint = "; pass dtype='complex128' for complex values" if arr.dtype.kind == "c" else ""
        raise ArgumentError(f"{name}: expected real numbers, got {what}{hint}")
    return arr.astype(dtype, copy=False)


def _params(params, dtype):
    """Parameter values by component name, and the shape each was given in.

    A column (n, 1) may also be given as a vector (n,); its gradient comes back the same way.
    """
    params = dict(params or {})
    values, given = {}, {}
    for name, shape, comps in PARAM_GROUPS:
        if name not in params:
            names = ", ".join(n for n, _, _ in PARAM_GROUPS)
            raise ArgumentError(f"parameter {name!r} is missing; the parameters are {names}")
        arr = _as_array(f"parameter {name!r}", params.pop(name), dtype)
        shape = tuple(shape)
        column = len(shape) == 2 and shape[1] == 1 and arr.shape == (shape[0],)
        if arr.shape != shape and not column:
            expected = f"{shape}" + (
                f" or ({shape[0]},)" if len(shape) == 2 and shape[1] == 1 else ""
            )
            raise ArgumentError(f"parameter {name!r} has shape {arr.shape}, expected {expected}")
        given[name] = arr.shape
        for comp, v in zip(comps, arr.reshape(-1), strict=False):
            values[comp] = v
    if params:
        raise ArgumentError(f"unknown parameter(s) {', '.join(sorted(params))}")
    return values, given


def _split(name, arr, comps, is_vector, lead):
    """Component arrays of one group: the last axis is the component axis for vectors."""
    if is_vector:
        if arr.ndim < lead + 1 or arr.shape[-1] != len(comps):
            raise ArgumentError(
                f"{name} has shape {arr.shape}; expected (..., {len(comps)}) with "
                f"{len(comps)} components on the last axis"
            )
        return {c: arr[..., i] for i, c in enumerate(comps)}
    return {comps[0]: arr}


def _batch_of(shapes):
    """The batch shape shared by the arrays (() for one sequence)."""
    batch = None
    for what, shape in shapes:
        if batch is None:
            batch = shape
        elif shape != batch:
            raise ArgumentError(f"{what} has batch shape {shape}, but other arguments have {batch}")
    return () if batch is None else batch


def _prepare(params, inputs, init, steps, dtype, targets=True):
    P, shapes_given = _params(params, dtype)
    inputs = dict(inputs or {})
    X, shapes, length = {}, [], None
    for name, comps, is_vector in INPUT_GROUPS:
        if name not in inputs:
            if name in TARGET_NAMES and not targets:
                continue  # the forward pass does not read the loss's targets
            raise ArgumentError(
                f"input {name!r} is missing; give an array shaped (T{', n' if is_vector else ''})"
                f" or (T, batch{', n' if is_vector else ''})"
            )
        arr = _as_array(f"input {name!r}", inputs.pop(name), dtype)
        if arr.ndim < 1 + is_vector or arr.ndim > 2 + is_vector:
            raise ArgumentError(
                f"input {name!r} has shape {arr.shape}; expected (T{', n' if is_vector else ''}) "
                f"or (T, batch{', n' if is_vector else ''})"
            )
        if length is None:
            length = arr.shape[0]
        elif arr.shape[0] != length:
            raise ArgumentError(f"input {name!r} has {arr.shape[0]} time steps, others {length}")
        shapes.append((f"input {name!r}", arr.shape[1 : arr.ndim - is_vector]))
        X.update(_split(f"input {name!r}", arr, comps, is_vector, 1))
    if inputs:
        raise ArgumentError(f"unknown input(s) {', '.join(sorted(inputs))}")
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, (int, numpy.integer)) or steps < 1
    ):
        raise ArgumentError(f"steps must be a positive integer, got {steps!r}")
    if length is not None:
        T = length - INPUT_LAG
        if steps is not None and steps != T:
            raise ArgumentError(f"steps={steps} but the inputs cover {T} steps")
    elif steps is not None:
        T = steps
    elif STEPS is not None:
        T = STEPS
    else:
        raise ArgumentError("this recurrence has no inputs: give the number of steps, steps=T")
    if T < 1:
        raise ArgumentError(f"the inputs must cover at least {1 + INPUT_LAG} time steps")
    if STEPS is not None and T != STEPS:
        raise ArgumentError(f"this unrolled code is for T = {STEPS} steps, got {T}")
    init = dict(init or {})
    H = {}
    for name, comps, is_vector in STATE_GROUPS:
        order = max(lag for c, lag in STATES if c in comps)
        value = init.pop(name, 0.0)
        arr = _as_array(f"init {name!r}", value, dtype)
        if order > 1 and arr.ndim >= 1 and arr.shape[0] == order and (arr.ndim > is_vector):
            parts = [arr[i] for i in range(order)]
        else:
            parts = [arr] * order
        for i, part in enumerate(parts):
            if is_vector and part.ndim == 0:
                part = numpy.broadcast_to(part, (len(comps),))
            if part.ndim - is_vector > 0:
                shapes.append((f"init {name!r}", part.shape[: part.ndim - is_vector]))
            for c, v in _split(f"init {name!r}", part, comps, is_vector, 0).items():
                H[(c, -i)] = v
    if init:
        raise ArgumentError(f"unknown initial state(s) {', '.join(sorted(init))}")
    batch = _batch_of(shapes)
    if batch:
        H = {k: numpy.broadcast_to(v, batch) for k, v in H.items()}
    return P, X, H, T, batch, shapes_given


def _scalar_path(batch, dtype):
    return not batch and dtype == numpy.float64 and step_scalar is not None


def _read(X, H, values, spec, k, scalar):
    """The value of one step argument at step k (1-based)."""
    kind, comp, lag = spec
    if kind == "time":
        return float(k) if scalar else k
    if kind == "input":
        v = X[comp][k - lag - 1 + INPUT_LAG]
    else:
        j = k - lag
        v = values[comp][j - 1] if j >= 1 else H[(comp, j)]
    return float(v) if scalar else v


# The math module raises where NumPy returns inf or nan with a RuntimeWarning; the one-sequence
# path then reruns with NumPy, so that overflow behaves the same for one sequence and a batch.
_MATH_ERRORS = (ArithmeticError, ValueError)


def _run_forward(P, X, H, T, batch, dtype):
    if _scalar_path(batch, dtype):
        try:
            return _forward_loop(P, X, H, T, True)
        except _MATH_ERRORS:
            pass
    return _forward_loop(P, X, H, T, False)


def _forward_loop(P, X, H, T, scalar):
    fn = step_scalar if scalar else step
    pvals = tuple(float(P[c]) if scalar else P[c] for c in PARAM_ORDER)
    values = {c: [None] * T for c in QUANTITIES}
    args = STEP_ARGS
    for k in range(1, T + 1):
        out = fn(pvals, *[_read(X, H, values, a, k, scalar) for a in args])
        for c, v in zip(QUANTITIES, out, strict=False):
            values[c][k - 1] = v
    return values


def _stack(values, groups, T, batch, dtype):
    out = {}
    for name, comps, is_vector in groups:
        cols = [
            numpy.asarray(
                [numpy.broadcast_to(numpy.asarray(v, dtype=dtype), batch) for v in values[c]],
                dtype=dtype,
            ).reshape((T,) + batch)
            for c in comps
        ]
        out[name] = numpy.stack(cols, axis=-1) if is_vector else cols[0]
    return out


def _dtype(dtype):
    dt = numpy.dtype(dtype)
    if dt.kind not in "fc":
        raise ArgumentError(f"dtype must be a floating or complex type, got {dt}")
    return dt


def forward(params, inputs=None, init=None, steps=None, dtype="float64"):
    """States and outputs at t = 1..T, as arrays shaped (T, [batch], [n]) by name."""
    dt = _dtype(dtype)
    P, X, H, T, batch, _ = _prepare(params, inputs, init, steps, dt, targets=False)
    if MODE == "unrolled":
        values = _unrolled_values(P, X, H, T)
    else:
        values = _run_forward(P, X, H, T, batch, dt)
    return _stack(values, OUTPUT_GROUPS, T, batch, dt)


def _leaves(P, X, H, T):
    """Leaf values by code name for unrolled code."""
    v = dict(P)
    for comp, arr in X.items():
        for i in range(arr.shape[0]):
            v[f"{comp}__{_time_code(i + 1 - INPUT_LAG)}"] = arr[i]
    for (comp, time), value in H.items():
        v[f"{comp}__{_time_code(time)}"] = value
    return v


def _time_code(time):
    return str(time) if time >= 0 else f"m{-time}"


def _unrolled_values(P, X, H, T):
    computed = unrolled_forward(_leaves(P, X, H, T))
    return {c: [computed[f"{c}__{k}"] for k in range(1, T + 1)] for c in QUANTITIES}


def _check_loss():
    if not HAS_LOSS:
        raise ArgumentError("no loss was compiled; pass loss=... to sr.lambdify / sr.codegen")


def loss(params, inputs=None, init=None, steps=None, dtype="float64"):
    """The loss of each sequence: a scalar, or an array shaped (batch,)."""
    _check_loss()
    dt = _dtype(dtype)
    P, X, H, T, batch, _ = _prepare(params, inputs, init, steps, dt)
    if MODE == "unrolled":
        value, _, _ = unrolled_value_and_grad(_leaves(P, X, H, T))
        return numpy.broadcast_to(value, batch).copy() if batch else value
    values = _run_forward(P, X, H, T, batch, dt)
    pvals = tuple(P[c] for c in PARAM_ORDER)
    total = 0.0
    for k in range(1, T + 1):
        total = total + loss_step(pvals, *[_read(X, H, values, a, k, False) for a in LOSS_ARGS])
    return numpy.broadcast_to(total, batch).copy() if batch else total


def value_and_grad(params, inputs=None, init=None, steps=None, dtype="float64", init_grad=False):
    """The loss summed over the batch and its gradient, shaped like the parameters.

    With ``init_grad=True`` the gradient also holds the initial states under ``"init"``.
    """
    _check_loss()
    dt = _dtype(dtype)
    P, X, H, T, batch, given = _prepare(params, inputs, init, steps, dt)
    if MODE == "unrolled":
        value, pgrads, hgrads = unrolled_value_and_grad(_leaves(P, X, H, T))
        pending = {(c, time): g for (c, time), g in hgrads.items()}
    else:
        value, pgrads, pending = _scan_value_and_grad(P, X, H, T, batch, dt)
    total = numpy.sum(numpy.broadcast_to(value, batch)) if batch else value
    grads = {}
    for name, _, comps in PARAM_GROUPS:
        if MODE == "scan":  # adjoint_step already summed its gradients over the batch
            flat = [pgrads.get(c, 0.0) for c in comps]
        else:
            flat = [numpy.sum(numpy.broadcast_to(pgrads.get(c, 0.0), batch)) for c in comps]
        grads[name] = numpy.asarray(flat, dtype=dt).reshape(given[name])
    if init_grad:
        grads["init"] = _init_grads(pending, batch, dt)
    return total, grads


def _init_grads(pending, batch, dt):
    out = {}
    for name, comps, is_vector in STATE_GROUPS:
        order = max(lag for c, lag in STATES if c in comps)
        parts = []
        for i in range(order):
            cols = [
                numpy.broadcast_to(numpy.asarray(pending.get((c, -i), 0.0), dt), batch)
                for c in comps
            ]
            parts.append(numpy.stack(cols, axis=-1) if is_vector else cols[0])
        out[name] = parts[0] if order == 1 else numpy.stack(parts)
    return out


def _scan_value_and_grad(P, X, H, T, batch, dt):
    if _scalar_path(batch, dt) and adjoint_step_scalar is not None:
        try:
            return _adjoint_loop(P, X, H, T, batch, dt, True)
        except _MATH_ERRORS:
            pass
    return _adjoint_loop(P, X, H, T, batch, dt, False)


def _adjoint_loop(P, X, H, T, batch, dt, scalar):
    values = _forward_loop(P, X, H, T, True) if scalar else _forward_loop(P, X, H, T, False)
    fn = adjoint_step_scalar if scalar else adjoint_step
    pvals = tuple(float(P[c]) if scalar else P[c] for c in PARAM_ORDER)
    value = 0.0
    grads = [0.0] * len(PARAM_ORDER)
    pending = {}
    count = int(numpy.prod(batch)) if batch else 1
    # The adjoint step sums its gradients over the batch assuming every carry is a per-sequence
    # array: also before anything has flowed back, and where what flowed back is the same for
    # every sequence (sums of contributions start from this array).
    zero = numpy.zeros(batch, dtype=dt) if batch else 0.0
    for k in range(T, 0, -1):
        args = [
            pending.pop((a[1], k), zero)
            if a[0] == "carry"
            else count
            if a[0] == "count"
            else _read(X, H, values, a, k, scalar)
            for a in ADJ_ARGS
        ]
        loss_k, outs, pgr = fn(pvals, *args)
        value = value + loss_k
        for (comp, lag), v in zip(ADJ_OUT, outs, strict=False):
            key = (comp, k - lag)
            pending[key] = pending.get(key, zero) + v
        for i, g in enumerate(pgr):
            grads[i] = grads[i] + g
    return value, dict(zip(PARAM_ORDER, grads, strict=False)), pending
