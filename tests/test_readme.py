"""The README's promises: its Python example runs, and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_starts_with_the_two_commands():
    first = blocks("console")[0].strip().splitlines()
    assert first[0].endswith("symrnn demo")
    assert "pytest" in first[1]


def test_ci_runs_the_readme_test_command_verbatim():
    test_command = blocks("console")[0].strip().splitlines()[1]
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_readme_python_example_runs():
    (code,) = blocks("python")
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # the project's own README, not user input
    U, L = namespace["U"], namespace["L"]
    h, x = namespace["h"], namespace["x"]
    w, u, b = namespace["w"], namespace["u"], namespace["b"]
    # The comment in the README shows the closed form; check it is what the code gives.
    assert str(U.closed_form(2)) == "tanh(b + u*x(2) + w*tanh(b + u*x(1) + w*h(0)))"
    assert {str(k) for k in namespace["F"].param_shapes} == {"w", "u", "b"}
    del L, h, x, w, u, b


def test_readme_links_every_page_of_the_site():
    linked = set(re.findall(r"\]\((docs/[^)#]+)", README))
    assert all((ROOT / path).is_file() for path in linked), sorted(linked)
    # The site's home page, docs/index.md, is what the README itself is on GitHub.
    pages = {p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")}
    pages.discard("docs/index.md")
    assert pages <= linked, f"pages the README does not link: {sorted(pages - linked)}"
    # The one rendered graph the README shows exists.
    (image,) = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert (ROOT / image).is_file()
