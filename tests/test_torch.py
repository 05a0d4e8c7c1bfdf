"""sr.cells.from_torch: PyTorch's nn.RNN, nn.GRU and nn.LSTM as symrnn cells.

PyTorch is the outside oracle here: its forward states and its autograd gradients (float64)
against symrnn's generated code for the cell that ``from_torch`` builds.  The tests that need
PyTorch skip where it is not installed; the refusals read duck-typed stand-ins and always run.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import symrnn as sr
from symrnn.errors import SymrnnError

requires_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="PyTorch is not installed"
)
GATES = {"RNN": ("",), "GRU": ("r", "z", "g"), "LSTM": ("i", "f", "g", "o")}


def _torch_layout(kind, grads, layers, bias):
    """symrnn's gradients by symrnn's names, put back into PyTorch's parameter layout."""
    out = {}
    for level in range(layers):
        suffix = "" if layers == 1 else str(level + 1)
        sub = [f"_{g}" if g else "" for g in GATES[kind]]
        out[f"weight_ih_l{level}"] = np.vstack([grads[f"U{s}{suffix}"] for s in sub])
        out[f"weight_hh_l{level}"] = np.vstack([grads[f"W{s}{suffix}"] for s in sub])
        if bias and kind == "RNN":
            # nn.RNN's two biases act only through their sum b: both get dL/db.
            out[f"bias_ih_l{level}"] = out[f"bias_hh_l{level}"] = grads[f"b{suffix}"].ravel()
        elif bias:
            out[f"bias_ih_l{level}"] = np.concatenate([grads[f"b{s}{suffix}"] for s in sub])
            out[f"bias_hh_l{level}"] = np.concatenate(
                [grads[f"b_h{g}{suffix}"] for g in GATES[kind]]
            ).ravel()
    return {name: value.ravel() if "bias" in name else value for name, value in out.items()}


def _compare(kind, hidden, layers=1, steps=5, batch=3, inputs=2, tol=1e-9, **options):
    import torch

    torch.manual_seed(hidden + layers)
    module = getattr(torch.nn, kind)(inputs, hidden, num_layers=layers, **options).double()
    rec, params = sr.cells.from_torch(module)
    rng = np.random.default_rng(hidden)
    xs, ys = rng.normal(size=(steps, batch, inputs)), rng.normal(size=(steps, batch, hidden))
    h0 = rng.normal(size=(layers, batch, hidden))
    c0 = rng.normal(size=(layers, batch, hidden))

    batch_first = options.get("batch_first", False)
    x_torch = torch.tensor(xs.transpose(1, 0, 2) if batch_first else xs)
    init_torch = torch.tensor(h0, requires_grad=True)
    if kind == "LSTM":
        c_torch = torch.tensor(c0, requires_grad=True)
        out, (h_last, c_last) = module(x_torch, (init_torch, c_torch))
    else:
        out, h_last = module(x_torch, init_torch)
    if batch_first:
        out = out.transpose(0, 1)
    loss = 0.5 * ((out - torch.tensor(ys)) ** 2).sum()
    loss.backward()

    top = "h" if layers == 1 else f"h{layers}"
    h, y = sr.vector(top, hidden), sr.vector("y", hidden)
    F = sr.lambdify(rec, loss=sr.squared_error(h(sr.t), y(sr.t)))
    names = ["h"] if layers == 1 else [f"h{k + 1}" for k in range(layers)]
    init = {name: h0[k] for k, name in enumerate(names)}
    if kind == "LSTM":
        init |= {name.replace("h", "c"): c0[k] for k, name in enumerate(names)}

    states = F.forward(params, {"x": xs}, init=init)
    np.testing.assert_allclose(states[top], out.detach().numpy(), rtol=0, atol=tol)
    for k, name in enumerate(names):
        np.testing.assert_allclose(states[name][-1], h_last[k].detach().numpy(), atol=tol)
        if kind == "LSTM":
            c_name = name.replace("h", "c")
            np.testing.assert_allclose(states[c_name][-1], c_last[k].detach().numpy(), atol=tol)

    value, grads = F.value_and_grad(params, {"x": xs, "y": ys}, init=init, init_grad=True)
    assert value == pytest.approx(loss.item(), rel=1e-12)
    expected = {name: p.grad.numpy() for name, p in module.named_parameters()}
    got = _torch_layout(kind, grads, layers, options.get("bias", True))
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=tol, err_msg=name)
    for k, name in enumerate(names):
        np.testing.assert_allclose(grads["init"][name], init_torch.grad[k].numpy(), atol=tol)
        if kind == "LSTM":
            c_name = name.replace("h", "c")
            np.testing.assert_allclose(grads["init"][c_name], c_torch.grad[k].numpy(), atol=tol)
    return rec, params


@requires_torch
@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_one_layer_matches_pytorch(kind):
    rec, params = _compare(kind, hidden=3)
    assert rec.name == {"RNN": "elman", "GRU": "gru", "LSTM": "lstm"}[kind]
    assert all(value.dtype == np.float64 for value in params.values())
    assert rec == {"RNN": sr.cells.elman, "GRU": sr.cells.gru, "LSTM": sr.cells.lstm}[kind](
        3, inputs=2
    )


@requires_torch
def test_relu_rnn_matches_pytorch():
    rec, _ = _compare("RNN", hidden=3, nonlinearity="relu")
    assert "relu" in str(rec)


@requires_torch
@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_stacked_layers_match_pytorch(kind):
    rec, params = _compare(kind, hidden=3, layers=2)
    assert {"U1", "U2"} <= set(params) if kind == "RNN" else {"U_g1", "U_g2"} <= set(params)
    assert rec.name == kind.lower()


@requires_torch
@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_without_bias_and_batch_first(kind):
    rec, params = _compare(kind, hidden=3, bias=False, batch_first=True)
    assert not any(name.startswith("b") for name in params)
    assert not any(str(p).startswith("b") for p in rec.params)


@requires_torch
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", ["RNN", "GRU", "LSTM"])
def test_hidden_size_64_matches_pytorch(kind, layers):
    _compare(kind, hidden=64, layers=layers, steps=20, batch=4, inputs=5)


@requires_torch
def test_example_gru_from_a_trained_module_gives_the_same_predictions():
    """A module after a few optimiser steps (weights no longer at their initial values)."""
    import torch

    torch.manual_seed(1)
    module = torch.nn.GRU(2, 3).double()
    optimiser = torch.optim.SGD(module.parameters(), lr=0.5)
    x = torch.randn(6, 4, 2, dtype=torch.float64)
    for _ in range(3):
        optimiser.zero_grad()
        out, _ = module(x)
        (out**2).sum().backward()
        optimiser.step()
    rec, params = sr.cells.from_torch(module)
    got = sr.lambdify(rec).forward(params, {"x": x.numpy()})["h"]
    np.testing.assert_allclose(got, module(x)[0].detach().numpy(), atol=1e-12)


# ------------------------------------------------------------------------------ refusals
class _Tensor:
    def __init__(self, value):
        self.value = np.asarray(value, dtype=float)

    def detach(self):
        return self.value


def _fake(kind, **attributes):
    """A duck-typed stand-in for a PyTorch module of one layer (hidden 2, input 1)."""
    rows = 2 * len(GATES.get(kind, ("",)))
    defaults = {
        "input_size": 1,
        "hidden_size": 2,
        "num_layers": 1,
        "bias": True,
        "batch_first": False,
        "bidirectional": False,
        "dropout": 0.0,
        "training": True,
        "proj_size": 0,
        "nonlinearity": "tanh",
    }
    params = [
        ("weight_ih_l0", _Tensor(np.ones((rows, 1)))),
        ("weight_hh_l0", _Tensor(np.ones((rows, 2)))),
        ("bias_ih_l0", _Tensor(np.ones(rows))),
        ("bias_hh_l0", _Tensor(np.ones(rows))),
    ]
    namespace = defaults | attributes | {"named_parameters": lambda self: iter(params)}
    return type(kind, (), namespace)()


def test_duck_typed_module_without_torch():
    rec, params = sr.cells.from_torch(_fake("LSTM"))
    assert rec == sr.cells.lstm(2)
    assert set(params) == set(rec.param_groups)
    assert params["U_o"].shape == (2, 1) and params["b_ho"].shape == (2,)


@pytest.mark.parametrize(
    "module, message",
    [
        (_fake("GRU", bidirectional=True), "bidirectional GRU is not supported"),
        (_fake("LSTM", proj_size=2), "proj_size=2 is not supported; use proj_size=0"),
        (_fake("RNN", num_layers=2, dropout=0.5), "call module.eval\\(\\) first"),
        (_fake("RNN", nonlinearity="gelu"), "nonlinearity 'gelu' is not supported"),
        (_fake("Transformer"), "from_torch reads torch.nn.RNN, nn.GRU or nn.LSTM, got Transf"),
        (object(), "got object"),
    ],
)
def test_unsupported_modules_are_refused_in_one_line(module, message):
    with pytest.raises(SymrnnError, match=message) as info:
        sr.cells.from_torch(module)
    assert "\n" not in str(info.value)
