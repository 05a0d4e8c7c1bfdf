"""Tests of the whitelist parser: lecture equations, every error path, limits, hostile input."""

from __future__ import annotations

import ast
import builtins
import time
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symrnn.parsing as parsing
from symrnn import functions as fn
from symrnn.errors import LimitError, ParseError, ShapeError, SymrnnError
from symrnn.matrices import explicit, matrix, vector
from symrnn.notation import t, time_function
from symrnn.parsing import (
    MAX_ARGS,
    MAX_DEPTH,
    MAX_EXPONENT,
    MAX_NUMBER_DIGITS,
    MAX_TERMS,
    MAX_TEXT,
    parse_equation,
    parse_equations,
    parse_expression,
)

h, s, x, o, z, r = (time_function(n) for n in ("h", "s", "x", "o", "z", "r"))
w, u, b, c, v, theta = (sp.Symbol(n, real=True) for n in ("w", "u", "b", "c", "v", "theta"))
f = sp.Function("f")


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert len(message.splitlines()) == 1, message
    return message


# -- the lecture's equations --------------------------------------------------------------


def gru() -> list[sp.Eq]:
    W_z, U_z, b_z, W_r, U_r, b_r, W_h, U_h, b_h = sp.symbols(
        "W_z U_z b_z W_r U_r b_r W_h U_h b_h", real=True
    )
    return [
        sp.Eq(z(t), fn.sigmoid(W_z * x(t) + U_z * h(t - 1) + b_z), evaluate=False),
        sp.Eq(r(t), fn.sigmoid(W_r * x(t) + U_r * h(t - 1) + b_r), evaluate=False),
        sp.Eq(
            h(t),
            (1 - z(t)) * h(t - 1) + z(t) * sp.tanh(W_h * x(t) + U_h * (r(t) * h(t - 1)) + b_h),
            evaluate=False,
        ),
    ]


LECTURE = [
    ("s(t) = f(s(t-1), theta)", ["f"], sp.Eq(s(t), f(s(t - 1), theta), evaluate=False)),
    (
        "h(t) = tanh(w*h(t-1) + u*x(t) + b)",
        [],
        sp.Eq(h(t), sp.tanh(w * h(t - 1) + u * x(t) + b), evaluate=False),
    ),
    ("s(t) = s(t-1) + s(t-2)", [], sp.Eq(s(t), s(t - 1) + s(t - 2), evaluate=False)),
    ("o(t) = c + v*h(t)", [], sp.Eq(o(t), c + v * h(t), evaluate=False)),
    ("s(t) = f(s(t - 1), x(t), theta)", ["f"], sp.Eq(s(t), f(s(t - 1), x(t), theta))),
]


@pytest.mark.parametrize(("text", "functions", "expected"), LECTURE)
def test_lecture_equations(text: str, functions: list[str], expected: sp.Eq) -> None:
    got = parse_equation(text, functions=functions)
    assert isinstance(got, sp.Eq)
    assert got == expected
    assert got.lhs == expected.lhs and got.rhs == expected.rhs


def test_gru_system_with_comments_and_continuation_lines() -> None:
    text = """
        # a GRU cell, one unit
        z(t) = sigmoid(W_z*x(t) + U_z*h(t-1) + b_z)   # update gate
        r(t) = sigmoid(W_r*x(t) + U_r*h(t-1) + b_r)   # reset gate

        h(t) = ((1 - z(t))*h(t-1)                     # open brackets continue the line
                + z(t)*tanh(W_h*x(t) + U_h*(r(t)*h(t-1)) + b_h))
    """
    assert parse_equations(text) == gru()


def test_a_line_break_outside_brackets_ends_the_equation() -> None:
    with pytest.raises(ParseError) as info:
        parse_equations("h(t) = (1 - z(t))*h(t-1)\n    + z(t)*x(t)")
    assert one_line(info).startswith("line 2: cannot read '+ z(t)*x(t)': it has no '='")


def test_equations_split_on_semicolons_lines_and_lists() -> None:
    one = parse_equations("s(t) = s(t-1) + s(t-2); o(t) = c + v*h(t)")
    lines = parse_equations("s(t) = s(t-1) + s(t-2)\n\n   \no(t) = c + v*h(t)\n")
    listed = parse_equations(["s(t) = s(t-1) + s(t-2)", "o(t) = c + v*h(t)  # output"])
    expected = [LECTURE[2][2], LECTURE[3][2]]
    assert one == lines == listed == expected
    assert parse_equations("# only a comment\n\n ; ;") == []
    assert parse_equations([]) == []


def test_time_index_and_constants() -> None:
    assert parse_expression("t") is t
    assert parse_expression("pi") is sp.pi
    assert parse_expression("h(t+1) - h(3) + h(-1) + h(2*t)") == h(t + 1) - h(3) + h(-1) + h(2 * t)
    assert parse_expression("theta").is_real
    assert parse_expression("W_hh") == sp.Symbol("W_hh", real=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.5", sp.Rational(1, 2)),
        ("0.1 + 0.2", sp.Rational(3, 10)),
        ("1e-3", sp.Rational(1, 1000)),
        ("2.5e3", sp.Integer(2500)),
        ("1_000", sp.Integer(1000)),
        ("0x10", sp.Integer(16)),
        ("x**0.5", sp.sqrt(sp.Symbol("x", real=True))),
        ("-x + +y", -sp.Symbol("x", real=True) + sp.Symbol("y", real=True)),
        ("2**-3", sp.Rational(1, 8)),
        ("-2**2", sp.Integer(-4)),
        ("a/b/c*d", sp.Symbol("a", real=True) * sp.Symbol("d", real=True) / (b * c)),
    ],
)
def test_numbers_are_exact(text: str, expected: sp.Expr) -> None:
    assert parse_expression(text) == expected


def test_known_functions() -> None:
    y = sp.Symbol("y", real=True)
    cases = {
        "tanh(y)": sp.tanh(y),
        "sigmoid(y)": fn.sigmoid(y),
        "relu(y)": fn.relu(y),
        "softplus(y)": fn.softplus(y),
        "exp(y)": sp.exp(y),
        "log(y)": sp.log(y),
        "sqrt(y)": sp.sqrt(y),
        "sin(y) + cos(y) + tan(y)": sp.sin(y) + sp.cos(y) + sp.tan(y),
        "sinh(y) + cosh(y) + atan(y) + asinh(y) + erf(y)": (
            sp.sinh(y) + sp.cosh(y) + sp.atan(y) + sp.asinh(y) + sp.erf(y)
        ),
        "abs(y) + Abs(y)": 2 * sp.Abs(y),
        "Max(y, 0, w) + Min(y, 1)": sp.Max(y, 0, w) + sp.Min(y, 1),
        "exp(2*log(3))": sp.Integer(9),
        "exp(1)**y": sp.exp(y),
    }
    for text, expected in cases.items():
        assert parse_expression(text) == expected, text


def test_names_mapping_supplies_symbols_numbers_and_functions() -> None:
    plain = sp.Symbol("w")  # not real: the caller's own symbol is used as given
    hv, W = vector("h", 2), matrix("W", 2, 2)
    got = parse_expression("w*h(t-1)", names={"w": plain, "h": time_function("h")})
    assert got == plain * h(t - 1)
    assert parse_expression("k*x", names={"k": 3}) == 3 * sp.Symbol("x", real=True)
    assert parse_expression("k", names={"k": 0.25}) == sp.Rational(1, 4)
    eq = parse_equation("h(t) = tanh(W*h(t-1))", names={"h": hv, "W": W})
    assert eq.lhs == hv(t)
    assert eq.rhs.expr == W * hv(t - 1)  # tanh applied elementwise
    assert str(eq.rhs) == str(fn.tanh(W * hv(t - 1)))
    assert parse_expression("W*h(t-1) + W*h(t-2)", names={"h": hv, "W": W}) == (
        W * hv(t - 1) + W * hv(t - 2)
    )
    y = sp.Symbol("y", real=True)
    assert parse_expression("g(y + 1)", names={"g": sp.Lambda(y, y**2)}) == (y + 1) ** 2
    assert parse_expression("t + pi", names={"t": 1, "pi": 2}) == t + sp.pi  # fixed names
    assert parse_expression("g(x, y)", names={"g": f}) == f(
        sp.Symbol("x", real=True), sp.Symbol("y", real=True)
    )


# -- error paths ----------------------------------------------------------------------------

ERRORS = [
    # (text, exception, fragments that the message must contain)
    ("", ParseError, ["empty expression", "write e.g."]),
    ("   \n ", ParseError, ["empty expression"]),
    ("x +", ParseError, ["invalid syntax", "at the end", "'x +'"]),
    ("x +* y", ParseError, ["invalid syntax", "column 4"]),
    ("tanh(x", ParseError, ["never closed", "column 5"]),
    ("a.b", ParseError, ["attribute access is not allowed", "write an expression such as"]),
    ("a[0]", ParseError, ["indexing is not allowed"]),
    ("lambda: 1", ParseError, ["lambda is not allowed"]),
    ("[x for x in y]", ParseError, ["comprehensions are not allowed"]),
    ("{x for x in y}", ParseError, ["comprehensions are not allowed"]),
    ("1 == 1", ParseError, ["comparisons are not allowed"]),
    ("x < y", ParseError, ["comparisons are not allowed"]),
    ("x and y", ParseError, ["'and'/'or' are not allowed"]),
    ("x if y else z", ParseError, ["conditional expressions"]),
    ("f(*x)", ParseError, ["starred arguments are not allowed"]),
    ('f"{x}"', ParseError, ["f-strings are not allowed"]),
    ("{1: 2}", ParseError, ["dicts are not allowed"]),
    ("[1, 2]", ParseError, ["lists are not allowed"]),
    ("1, 2", ParseError, ["tuples"]),
    ("{1}", ParseError, ["sets are not allowed"]),
    ("(y := 1)", ParseError, ["assignment expressions"]),
    ("True", ParseError, ["True is not allowed", "write 1 or 0"]),
    ("None", ParseError, ["None is not allowed"]),
    ("...", ParseError, ["'...' is not allowed"]),
    ("'s'", ParseError, ["string literals are not allowed", "without quotes"]),
    ("b's'", ParseError, ["bytes literals are not allowed"]),
    ("1j", ParseError, ["complex numbers are not allowed"]),
    ("1e999", ParseError, ["too large for a float"]),
    ("x % 2", ParseError, ["the operator % is not allowed"]),
    ("x // 2", ParseError, ["the operator // is not allowed"]),
    ("x ^ 2", ParseError, ["the operator ^ is not allowed", "x**2"]),
    ("not x", ParseError, ["the operator not is not allowed"]),
    ("~x", ParseError, ["the operator ~ is not allowed"]),
    ("x = 1", ParseError, ["an expression has no '='", "parse_equation"]),
    ("__x", ParseError, ["the name '__x' is not allowed", "letters"]),
    ("x__y", ParseError, ["the name 'x__y' is not allowed"]),
    ("x_" * 40, ParseError, ["is not allowed", "at most 64"]),
    ("(x + 1)(t)", ParseError, ["only names can be called"]),
    ("a.b(t)", ParseError, ["attribute access is not allowed"]),
    ("tanh(x=1)", ParseError, ["keyword arguments are not allowed"]),
    ("tanh(x, y)", ParseError, ["tanh takes 1 argument, got 2", "tanh(x)"]),
    ("log(x, 2)", ParseError, ["log takes 1 argument, got 2"]),
    ("Max(x)", ParseError, ["Max takes 2 to 32 arguments, got 1", "Max(x, y)"]),
    ("tanh", ParseError, ["tanh is a function but is used without arguments"]),
    ("foo(x)", ParseError, ["unknown function 'foo'", "tanh, sigmoid", "h(t-1)", "['foo']"]),
    ("h(t, 1)", ParseError, ["unknown function 'h'"]),
    ("h(1/2)", ParseError, ["unknown function 'h'"]),
    ("h(tanh(t))", ParseError, ["unknown function 'h'"]),
    ("h(h(t))", ParseError, ["unknown function 'h'"]),
    ("t(3)", ParseError, ["t cannot be called"]),
    ("1/0", ParseError, ["divides by zero"]),
    ("x/(y - y)", ParseError, ["divides by zero"]),
    ("0**-1", ParseError, ["divides by zero"]),
    ("Max(log(0), 1)", ParseError, ["SymPy cannot build it", "not comparable"]),
    ("x\x00", ParseError, ["null"]),
    ("1if x else y", ParseError, ["invalid decimal literal"]),
    ("'\\d'", ParseError, ["invalid escape sequence"]),
    ("x**100001", LimitError, ["exponent 100001", "10,000"]),
    ("x**-10001", LimitError, ["exponent -10001"]),
    ("x**1e5", LimitError, ["exponent 100000"]),
    ("9**9**9", LimitError, ["exponent 387420489"]),
    ("(x**9999)**9999", LimitError, ["combine to the exponent 99980001"]),
    ("x**9999*x**9999", LimitError, ["combine to the exponent 19998"]),
    ("(10**999)**20", LimitError, ["would compute a number of about 19,980 digits"]),
    ("(2*x)**6000*7**4000", LimitError, ["multiply to about 5,187 digits"]),
    ("9**4200", LimitError, ["about 4,008 digits", "limit of 4,000"]),
    # a root (p/q exponent) makes SymPy build b**k for k up to q while looking for perfect roots
    ("(1/99)**(1/9999)", LimitError, ["(1/99)**(1/9999) would compute", "about 19,954 digits"]),
    ("(x/99)**(1/9999)", LimitError, ["about 19,954 digits"]),
    ("exp(log(1/99)/9999)", LimitError, ["exp of a multiple of a log"]),
    ("99**(1/1999)*99**(1/1997)", LimitError, ["exponents of equal bases add up to"]),
    (
        "*".join(f"2**(1/{10**999 + i})" for i in range(5)),
        LimitError,
        ["exponents of equal bases add up to more than 4,000 digits"],
    ),
    (
        "(" * 5 + "x" + "".join(f")**(1/{10**999 + i})" for i in range(5)),
        LimitError,
        ["exponent with more than 4,000 digits"],
    ),
    ("sqrt(10**150 + 1)", LimitError, ["sqrt is applied to a number with more than 100 digits"]),
    ("(10**150 + 1)**0.5", LimitError, ["root of a number with more than 100 digits"]),
    ("sigmoid(x + 10**150)", LimitError, ["sigmoid is applied to a number with more than 100"]),
    ("exp(-2**400)", LimitError, ["exp is applied to a number with more than 100 digits"]),
    ("(3*x)**(1/2)*(10**150+1)**0.5", LimitError, ["root of a number"]),
    ("exp(10**999*log(2))", LimitError, ["exp is applied to a number with more than 100"]),
    ("exp(9*10**50*log(2))", LimitError, ["exp of a multiple of a log"]),
    ("exp(x + 20000*log(2))", LimitError, ["exp of a multiple of a log"]),
    ("exp(2*(log(2) + 9000*log(3)))", LimitError, ["exp of a multiple of a log"]),
    ("exp(1)**(20000*log(2))", LimitError, ["exp of a multiple of a log"]),
    ("exp(log(10**150 + 1)/3)", LimitError, ["log is applied to a number with more than 100"]),
    ("1" * (MAX_NUMBER_DIGITS + 1), LimitError, ["more than 1,000 digits"]),
    ("0x" + "f" * 900, LimitError, ["more than 1,000 digits"]),
    ("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1), LimitError, ["nested 101 deep"]),
    ("-" * (MAX_DEPTH + 1) + "x", LimitError, ["more than 100 levels"]),
    ("x**" * (MAX_DEPTH + 1) + "x", LimitError, ["more than 100 levels"]),
    ("+".join(["x"] * (MAX_TERMS + 1)), LimitError, ["more than 1,000 terms in one sum"]),
    ("*".join(["x"] * (MAX_TERMS + 1)), LimitError, ["more than 1,000 factors"]),
    (f"Max({', '.join(['x'] * (MAX_ARGS + 1))})", LimitError, ["33 arguments", "limit 32"]),
    ("+".join(f"1/{10**50 + i}" for i in range(300)), LimitError, ["add up to more than"]),
    ("x" * (MAX_TEXT + 1), LimitError, ["100,001 characters", "limit of 100,000"]),
]


@pytest.mark.parametrize(("text", "error", "fragments"), ERRORS, ids=lambda v: repr(v)[:30])
def test_error_messages(text: str, error: type[SymrnnError], fragments: list[str]) -> None:
    with pytest.raises(error) as info:
        parse_expression(text)
    message = one_line(info)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_limits_accept_what_they_state() -> None:
    assert parse_expression("(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH) == sp.Symbol("x", real=True)
    assert parse_expression("+".join(["x"] * MAX_TERMS)) == MAX_TERMS * sp.Symbol("x", real=True)
    assert parse_expression(f"x**{MAX_EXPONENT}") == sp.Symbol("x", real=True) ** MAX_EXPONENT
    assert parse_expression(f"x**-{MAX_EXPONENT}") == sp.Symbol("x", real=True) ** -MAX_EXPONENT
    assert parse_expression("2**10000") == sp.Integer(2) ** 10000
    assert parse_expression("9" * MAX_NUMBER_DIGITS) == sp.Integer("9" * MAX_NUMBER_DIGITS)
    args = ", ".join(f"x{i}" for i in range(MAX_ARGS))
    assert len(parse_expression(f"Max({args})").args) == MAX_ARGS


def test_guards_do_not_refuse_ordinary_input() -> None:
    xs = [sp.Symbol(f"x{i}", real=True) for i in range(MAX_TERMS)]
    floats = [0.001 * (i + 1) for i in range(MAX_TERMS)]
    text = "+".join(f"{value!r}*x{i}" for i, value in enumerate(floats))
    assert parse_expression(text) == sp.Add(
        *[sp.Rational(repr(v)) * xi for v, xi in zip(floats, xs, strict=True)]
    )
    assert parse_expression("+".join(map(repr, floats))) == sum(
        (sp.Rational(repr(value)) for value in floats), sp.S.Zero
    )
    x_, y, z = sp.symbols("x y z", real=True)
    assert parse_expression("exp(log(x) + 100*y + 200*z)") == x_ * sp.exp(100 * y + 200 * z)
    assert parse_expression("exp(8000*log(3))") == sp.Integer(3) ** 8000
    assert len(str(parse_expression("9**4000"))) == 3817  # prints: below Python's 4,300 digits
    assert parse_expression("exp(-log(x)/2)") == 1 / sp.sqrt(x_)


def test_max_min_stay_unevaluated_on_symbols_and_are_fast() -> None:
    y = sp.Symbol("y", real=True)
    assert parse_expression("Max(1, 2, 3/2)") == 2
    assert parse_expression("Min(pi, 3)") == 3
    assert parse_expression("Max(0, h(t - 1))") == sp.Max(0, h(t - 1))
    assert parse_expression("Max(y, y + 1)") == sp.Max(y, y + 1, evaluate=False)
    args = ", ".join(f"x{i} - {i}" for i in range(MAX_ARGS))
    start = time.perf_counter()
    assert len(parse_expression(f"Max({args})").args) == MAX_ARGS
    assert time.perf_counter() - start < 1.0  # evaluated, SymPy takes 1.5 s


EQUATION_ERRORS = [
    ("", ParseError, ["empty equation", "h(t) = tanh"]),
    ("h(t)", ParseError, ["has no '='", "exactly one"]),
    ("h(t) == x(t)", ParseError, ["'==' but no '='"]),
    ("a = b = c", ParseError, ["2 '=' signs"]),
    ("h(t) = ", ParseError, ["empty right-hand side"]),
    (" = x", ParseError, ["empty left-hand side"]),
    ("h(t) = x(t) +", ParseError, ["(right-hand side)", "invalid syntax"]),
    ("h(t) = tanh(x=1)", ParseError, ["keyword arguments"]),
    ("h(t) <= x", ParseError, ["has no '='"]),
    ("x" * (MAX_TEXT + 1), LimitError, ["limit of 100,000"]),
]


@pytest.mark.parametrize(("text", "error", "fragments"), EQUATION_ERRORS)
def test_equation_errors(text: str, error: type[SymrnnError], fragments: list[str]) -> None:
    with pytest.raises(error) as info:
        parse_equation(text)
    message = one_line(info)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_equations_errors_name_the_line() -> None:
    with pytest.raises(ParseError) as info:
        parse_equations("h(t) = x(t)\n# comment\nh(t) = foo(x)")
    assert one_line(info).startswith("line 3: cannot read 'foo(x)'")
    with pytest.raises(ParseError) as info:
        parse_equations(["h(t) = x(t)", "o(t) = h(t)\n o(t) = h(t) +"])
    assert one_line(info).startswith("equations[1], line 2: ")
    with pytest.raises(LimitError, match="100,001 characters"):
        parse_equations(["x = 1", "x" * (MAX_TEXT - 4)])
    with pytest.raises(ParseError, match="equations must be a string or a list"):
        parse_equations(3)  # type: ignore[arg-type]
    with pytest.raises(ParseError, match=r"equations\[1\] must be a string"):
        parse_equations(["h(t) = 1", 2])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"functions": "f"}, "functions must be a list of names, got the string 'f'"),
        ({"functions": 3}, "functions must be a list of names, got int"),
        ({"functions": ["__f"]}, "'__f', which is not a usable function name"),
        ({"functions": ["t"]}, "'t', which is not a usable function name"),
        ({"names": ["x"]}, "names must be a mapping"),
        ({"names": {"x": "y"}}, "names['x'] is a str"),
        ({"names": {"x": time_function("x")}}, "x is a function in names"),
        ({"names": {"x": 1}, "text": "x(t)"}, "x is given in names as a value"),
        ({"names": {"x": sp.Symbol("x")}, "text": "x(t)"}, "x is given in names as a value"),
        ({"names": {"x": lambda a: 1 / 0}, "text": "x(t)"}, "names['x'] failed"),
    ],
)
def test_argument_errors(kwargs: dict, fragment: str) -> None:
    text = kwargs.pop("text", "x + 1")
    with pytest.raises(ParseError) as info:
        parse_expression(text, **kwargs)
    assert fragment in one_line(info)


def test_non_string_input() -> None:
    for call in (parse_expression, parse_equation):
        with pytest.raises(ParseError) as info:
            call(b"x")  # type: ignore[arg-type]
        assert "expected a string, got bytes" in one_line(info)


# -- hostile input --------------------------------------------------------------------------


def hostile(sentinel: Path) -> list[str]:
    return [
        f"__import__('os').system('touch {sentinel}')",
        f"__import__('os').system('touch {sentinel}') = 1",
        "().__class__.__bases__",
        "().__class__.__base__.__subclasses__()",
        "lambda: 1",
        "[x for x in y]",
        "h.__class__",
        f"open('{sentinel}', 'w')",
        f"exec(\"open('{sentinel}', 'w')\")",
        f"eval(\"open('{sentinel}', 'w')\")",
        "__builtins__",
        "9**9**9",
        "10**10**10",
        "2**2**2**2**2**2",
        "(10**999)**(10**999)",
        "exp(10**999*log(10**999))",
        "(" * 10_000 + "x" + ")" * 10_000,
        "[" * 10_000 + "]" * 10_000,
        "-" * 10_000 + "x",
        "~" * 10_000 + "x",
        "x**" * 10_000 + "x",
        "+".join(["x"] * 20_000),
        "*".join(["x"] * 20_000),
        "+".join(["(" + "*".join(["x"] * 900) + ")"] * 100),
        "x" * 10_000_000,
        "x if y else z",
        'f"{x}"',
        "a[0]",
        "a.b",
        "1 == 1",
        "True",
        "None",
        "'s'",
        "1j",
        "\x00",
        "x\u2028y",
        "h(t) = x(t)\n" * 20_000,
    ]


@pytest.mark.parametrize("call", [parse_expression, parse_equation, parse_equations])
def test_hostile_input_is_refused_quickly(tmp_path: Path, call: object) -> None:
    sentinel = tmp_path / "pwned"
    for text in hostile(sentinel):
        start = time.perf_counter()
        with pytest.raises(SymrnnError) as info:
            call(text)  # type: ignore[operator]
        elapsed = time.perf_counter() - start
        one_line(info)
        assert elapsed < 2.0, (text[:60], elapsed)
    assert not sentinel.exists()


def test_parser_never_evaluates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"evaluated {args!r:.80}")

    real_sympify = sp.sympify

    def sympify_no_strings(value: object, *args: object, **kwargs: object) -> object:
        if isinstance(value, str):
            forbidden(value)
        return real_sympify(value, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(sp, "sympify", sympify_no_strings)
    monkeypatch.setattr(sp, "parse_expr", forbidden)
    for text, functions, expected in LECTURE:
        assert parse_equation(text, functions=functions) == expected
    for text in hostile(tmp_path / "pwned")[:12]:
        with pytest.raises(SymrnnError):
            parse_expression(text)


def test_source_calls_no_evaluator() -> None:
    tree = ast.parse(Path(parsing.__file__).read_text())
    called = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                called.add(func.id)
            elif isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else "?"
                called.add(f"{owner}.{func.attr}")
    evaluators = {"eval", "exec", "compile", "__import__", "sympify", "parse_expr", "S"}
    assert not {name.rsplit(".", 1)[-1] for name in called - {"re.compile"}} & evaluators
    assert "ast.parse" in called


# -- properties -----------------------------------------------------------------------------

SYMBOLS = {n: sp.Symbol(n, real=True) for n in ("x", "y", "w", "theta", "b_1")}
TIMED = {"h": time_function("h"), "x": time_function("x"), "s": time_function("s")}
UNARY = {"tanh": sp.tanh, "sigmoid": fn.sigmoid, "exp": sp.exp, "sin": sp.sin, "relu": fn.relu}

leaves = st.one_of(
    st.sampled_from(sorted(SYMBOLS.items())),
    st.integers(0, 20).map(lambda k: (str(k), sp.Integer(k))),
    st.integers(0, 999).map(lambda k: (repr(k / 100), sp.Rational(k, 100))),
    st.tuples(st.sampled_from(sorted(TIMED)), st.integers(-2, 3)).map(
        lambda p: (f"{p[0]}(t - {p[1]})", TIMED[p[0]](t - p[1]))
    ),
    st.just(("t", t)),
    st.just(("pi", sp.pi)),
)


def extend(children: st.SearchStrategy) -> st.SearchStrategy:
    def binary(p: tuple) -> tuple[str, sp.Expr]:
        (ta, a), op, (tb, b_) = p
        ops = {"+": a + b_, "-": a - b_, "*": a * b_, "/": a / b_}
        return f"({ta}) {op} ({tb})", ops[op]

    return st.one_of(
        st.tuples(children, st.sampled_from("+-*/"), children).map(binary),
        st.tuples(children, st.integers(0, 3)).map(
            lambda p: (f"({p[0][0]})**{p[1]}", p[0][1] ** p[1])
        ),
        children.map(lambda p: (f"-({p[0]})", -p[1])),
        st.tuples(st.sampled_from(sorted(UNARY)), children).map(
            lambda p: (f"{p[0]}({p[1][0]})", UNARY[p[0]](p[1][1]))
        ),
        st.tuples(children, children).map(
            lambda p: (f"f({p[0][0]}, {p[1][0]})", f(p[0][1], p[1][1]))
        ),
    )


expressions = st.recursive(leaves, extend, max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions)
def test_random_expressions_match_direct_construction(case: tuple[str, sp.Expr]) -> None:
    text, expected = case
    assume(not expected.has(sp.zoo, sp.nan))
    try:
        got = parse_expression(text, functions=["f"])
    except ParseError as error:
        assert "divides by zero" in str(error)  # e.g. x/(y - y): SymPy would give zoo
        return
    assert got == expected, text


ALPHABET = "xht()+-*/=.,;#\n _e0123456789[]'\"{}:<>!^%~@ab"


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=ALPHABET)))
def test_random_text_raises_only_symrnn_errors(text: str) -> None:
    for call in (parse_expression, parse_equation, parse_equations):
        try:
            call(text, functions=["f"])
        except SymrnnError as error:
            assert len(str(error).splitlines()) == 1, str(error)


# -- vectors and matrices: @, elementwise *, .T, broadcasting --------------------------------

VECTORS = {
    "h": vector("h", 3),
    "x": vector("x", 2),
    "z": vector("z", 3),
    "W": matrix("W", 3, 3),
    "U": matrix("U", 3, 2),
    "b": matrix("b", 3),
}


def _same(a: sp.Basic, b: sp.Basic) -> None:
    """Equal component by component at a random point (a second route to the same numbers)."""
    ea, eb = explicit(a), explicit(b)
    assert ea.shape == eb.shape
    rng = np.random.default_rng(0)
    leaves = sorted(
        set().union(*(e.free_symbols | e.atoms(sp.core.function.AppliedUndef) for e in (ea, eb)))
        - {t},
        key=sp.default_sort_key,
    )
    point = {leaf: sp.Float(rng.uniform(-1, 1)) for leaf in leaves}
    for u, v in zip(ea.xreplace(point), eb.xreplace(point), strict=True):
        assert float(u) == pytest.approx(float(v), rel=1e-12)


def test_matmul_transpose_and_hadamard():
    h, x, z, W, U, b = (VECTORS[k] for k in "hxzWUb")
    got = parse_expression("tanh(b + W @ h(t-1) + U @ x(t))", names=VECTORS)
    _same(got, fn.tanh(b + W * h(t - 1) + U * x(t)))
    _same(parse_expression("W.T @ h(t)", names=VECTORS), W.T * h(t))
    _same(parse_expression("h(t).T @ W @ h(t)", names=VECTORS), h(t).T * W * h(t))
    got = parse_expression("z(t) * h(t-1)", names=VECTORS)
    assert isinstance(got, sp.HadamardProduct)
    _same(got, sp.HadamardProduct(z(t), h(t - 1)))
    # a matrix times a vector with * is SymPy's product, as recurrences print
    _same(parse_expression("W*h(t-1)", names=VECTORS), W * h(t - 1))


def test_scalars_broadcast_over_vectors():
    h, z = VECTORS["h"], VECTORS["z"]
    got = parse_expression("1 - z(t)", names=VECTORS)
    assert got == sp.OneMatrix(3, 1) - z(t)
    _same(parse_expression("2 + h(t) - 0.5", names=VECTORS), 1.5 * sp.OneMatrix(3, 1) + h(t))
    _same(
        parse_expression("(1 - z(t)) * h(t-1) / 2", names=VECTORS),
        sp.HadamardProduct(sp.OneMatrix(3, 1) - z(t), h(t - 1)) / 2,
    )
    _same(parse_expression("h(t)**2", names=VECTORS), sp.HadamardPower(h(t), 2))


@pytest.mark.parametrize(
    ("text", "error", "fragments"),
    [
        ("W @ x(t)", ShapeError, ["'W'", "3x3", "'x(t)'", "2x1", "columns on the left (3)"]),
        ("U @ W", ShapeError, ["'U'", "3x2", "'W'", "3x3"]),
        ("h(t) + x(t)", ShapeError, ["'h(t)'", "3x1", "'x(t)'", "2x1", "sum"]),
        ("z(t) * x(t)", ShapeError, ["'z(t)'", "'x(t)'", "elementwise"]),
        ("w @ h(t)", ParseError, ["'w'", "scalar", "@"]),
        ("h(t) @ 2", ParseError, ["'2'", "scalar"]),
        ("w.T", ParseError, ["'w' is a scalar", ".T"]),
        ("W.shape", ParseError, ["attribute access is not allowed"]),
        ("W.T.__class__", ParseError, ["attribute access is not allowed"]),
        ("h(t) / z(t)", ParseError, ["divides by the vector"]),
        ("2 ** h(t)", ParseError, ["exponent is a vector"]),
        ("h(t) ** w", ParseError, ["non-numeric exponent"]),
        ("h(t) ** 100000", LimitError, ["exponent"]),
        ("Max(h(t), 0)", ParseError, ["Max takes scalars"]),
        ("h(W)", ParseError, ["vector h takes one time argument"]),
        ("h(t, t)", ParseError, ["vector h takes one time argument"]),
    ],
)
def test_vector_errors(text, error, fragments):
    with pytest.raises(error) as info:
        parse_expression(text, names=VECTORS)
    message = one_line(info)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_equation_sides_must_have_one_shape():
    with pytest.raises(ShapeError) as info:
        parse_equation("h(t) = U", names=VECTORS)
    message = one_line(info)
    for fragment in ["in the equation 'h(t) = U'", "left side 'h(t)'", "3x1", "3x2"]:
        assert fragment in message, (fragment, message)
    with pytest.raises(ShapeError, match="shape scalar"):
        parse_equation("h(t) = w", names=VECTORS)
    with pytest.raises(ShapeError) as info:
        parse_equation("h(t) = tanh(b + W @ h(t-1) + U @ h(t-1))", names=VECTORS)
    message = one_line(info)
    assert "in the equation 'h(t) = tanh(b + W @ h(t-1) + U @ h(t-1))'" in message
    assert "'U' (shape 3x2) by 'h(t-1)' (shape 3x1)" in message


def test_matmul_without_vectors_is_refused_as_before():
    with pytest.raises(ParseError, match="scalar, but @ is the matrix product"):
        parse_expression("a @ b")
    with pytest.raises(ParseError, match="attribute access is not allowed"):
        parse_expression("a.b")
