"""The documentation builds with warnings as errors, and its code samples run.

``mkdocs build --strict`` fails on a broken link, a missing page or a docstring mkdocstrings
cannot render. Every fenced block whose info string is exactly ``python`` is a sample that must
run against the current API: the blocks of one page run in order, in one fresh interpreter with
its own PREFECT_LIKE_HOME, so a later block may use what an earlier one defined. A fragment that
cannot run on its own (it needs a cluster or a server) is fenced as ``py`` instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _pages_with_samples() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if BLOCK.search(p.read_text(encoding="utf-8")))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PREFECT_LIKE_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runners")]),
    }
    env.pop("PREFECT_LIKE_API_URL", None)
    return env


def test_docs_build_strict(tmp_path: Path) -> None:
    if shutil.which("mkdocs") is None and subprocess.run(
        [sys.executable, "-c", "import mkdocs, mkdocstrings"], capture_output=True
    ).returncode:
        pytest.skip("mkdocs and mkdocstrings[python] are not installed (the test extra has them)")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert (tmp_path / "site" / "reference" / "sweep" / "index.html").exists()


def test_every_page_with_samples_is_found() -> None:
    names = {p.relative_to(DOCS).as_posix() for p in _pages_with_samples()}
    assert {"index.md", "guide/concepts.md", "guide/sweeps.md", "guide/tasks-and-flows.md"} <= names


@pytest.mark.parametrize("page", _pages_with_samples(), ids=lambda p: p.relative_to(DOCS).as_posix())
def test_code_samples_run(page: Path, tmp_path: Path) -> None:
    blocks = BLOCK.findall(page.read_text(encoding="utf-8"))
    script = "\n\n".join(f"# --- sample {i + 1}\n{block}" for i, block in enumerate(blocks))
    (tmp_path / "samples.py").write_text(script, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "samples.py"], cwd=tmp_path, env=_env(tmp_path),
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, f"{page.name}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"


def _class_without_docstring(source: str, name: str) -> str:
    import ast

    (found,) = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == name]
    body = found.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        found.body = body[1:]
    return ast.dump(found)


def test_the_runner_the_guide_shows_is_the_shipped_process_runner() -> None:
    # "Writing a runner" shows a complete runner; it must be the code that ships and passes the suite.
    guide = (DOCS / "guide" / "runners.md").read_text(encoding="utf-8")
    block = guide.split("This is the whole of `ProcessPoolTaskRunner`", 1)[1].split("```py\n", 1)[1].split("```", 1)[0]
    shipped = (ROOT / "prefect_like" / "task_runners" / "local.py").read_text(encoding="utf-8")
    assert _class_without_docstring(block, "ProcessPoolTaskRunner") == _class_without_docstring(shipped, "ProcessPoolTaskRunner")


def test_every_test_the_reliability_page_names_exists() -> None:
    # Each fault on that page cites the test that causes it; a renamed or deleted test must not
    # leave the page claiming a proof that is gone.
    cited = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)", (DOCS / "reliability.md").read_text(encoding="utf-8")))
    assert len(cited) > 30
    missing = [f"{path}::{name}" for path, name in sorted(cited)
               if not re.search(rf"^(async )?def {name}\(", (ROOT / path).read_text(encoding="utf-8"), re.MULTILINE)]
    assert missing == []
