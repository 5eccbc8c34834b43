"""Every code sample in ``docs/`` runs, and the site builds with ``mkdocs build --strict``.

Rules for the Markdown (checked here):

* A ```` ```python ```` block is executed as written, in a fresh namespace, in a temporary
  working directory, with ``seedance_default`` pointing at an emulator process
  (``AIRFLOW_CONN_SEEDANCE_DEFAULT``). A block that builds a DAG must leave a DAG object.
* A ```` ```bash ```` block runs only when ``<!-- test: run -->`` precedes it (commands
  that start a server or need a real key are shown, not run).
* ```` ```json ```` blocks must parse.
* A Python block that must not run (a real bucket, a real key) is preceded by
  ``<!-- no-test: REASON -->``, and the reason is required.
"""

from __future__ import annotations

import json
import linecache
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import API_KEY, REPO, connection_json

DOCS = REPO / "docs"
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*(?P<kind>no-test|test)\s*:?\s*(?P<text>.*?)\s*-->\s*\Z", re.DOTALL)


@dataclass(frozen=True)
class Sample:
    path: Path
    line: int
    lang: str
    code: str
    marker: str | None  # "no-test", "test" or None
    marker_text: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(DOCS).as_posix()}:{self.line}"


def collect_samples() -> list[Sample]:
    samples = []
    for path in sorted(DOCS.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip()
            tail = before[before.rfind("\n") + 1 :] if "\n" in before else before
            marker = MARKER.search(tail)
            samples.append(
                Sample(
                    path=path,
                    line=text.count("\n", 0, match.start()) + 1,
                    lang=match["lang"].lower(),
                    code=match["body"],
                    marker=marker["kind"] if marker else None,
                    marker_text=marker["text"].strip() if marker else "",
                )
            )
    return samples


SAMPLES = collect_samples()
PYTHON = [s for s in SAMPLES if s.lang in ("python", "py") and s.marker != "no-test"]
BASH = [s for s in SAMPLES if s.lang in ("bash", "sh", "shell") and s.marker == "test"]
JSON = [s for s in SAMPLES if s.lang == "json"]


def test_docs_have_samples_and_every_skipped_one_says_why() -> None:
    assert len(PYTHON) >= 20, f"only {len(PYTHON)} runnable Python samples"
    for sample in SAMPLES:
        if sample.marker == "no-test":
            assert sample.lang in ("python", "py"), f"{sample.id}: no-test marks only Python blocks"
            assert len(sample.marker_text) >= 10, f"{sample.id}: <!-- no-test: ... --> needs a reason"
        if sample.marker == "test":
            assert sample.marker_text == "run", f"{sample.id}: the only test marker is <!-- test: run -->"


@pytest.mark.parametrize("sample", JSON, ids=lambda s: s.id)
def test_json_sample_parses(sample: Sample) -> None:
    json.loads(sample.code)


@pytest.fixture
def sample_env(emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The reader's set-up: a ``seedance_default`` connection, here to the emulator."""
    monkeypatch.setenv("AIRFLOW_CONN_SEEDANCE_DEFAULT", connection_json(emulator.base_url))
    monkeypatch.chdir(tmp_path)
    return emulator


@pytest.mark.integration
@pytest.mark.parametrize("sample", PYTHON, ids=lambda s: s.id)
def test_python_sample_runs(sample: Sample, sample_env) -> None:
    from airflow.sdk import DAG

    namespace: dict[str, object] = {"__name__": "__docs_sample__"}
    # Register the source so a failing sample's traceback shows its lines.
    linecache.cache[sample.id] = (len(sample.code), None, sample.code.splitlines(True), sample.id)
    code = compile(sample.code, sample.id, "exec")
    exec(code, namespace)
    if re.search(r"\bDAG\(|@dag\b", sample.code):
        assert any(isinstance(v, DAG) for v in namespace.values()), f"{sample.id} builds no DAG"
    assert sample_env.ledger()["accounts"][API_KEY]["balance"] >= 0


@pytest.mark.parametrize("sample", BASH, ids=lambda s: s.id)
def test_bash_sample_runs(sample: Sample, tmp_path: Path) -> None:
    env = os.environ.copy()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", sample.code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{sample.id}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def test_mkdocs_builds_the_site_without_warnings(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    pages = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    assert "index.html" in pages and "troubleshooting/index.html" in pages, sorted(pages)
