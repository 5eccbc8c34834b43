"""Every code sample in ``docs/`` and ``README.md`` runs, and the site builds with ``mkdocs build --strict``.

Rules for the Markdown (checked here):

* Every code fence is closed (an unclosed one swallows the rest of the page).
* A ```` ```python ```` block is executed as written, in a fresh namespace, in a temporary
  working directory, with ``seedance_default`` pointing at an emulator process
  (``AIRFLOW_CONN_SEEDANCE_DEFAULT``): each block is self-contained (its own imports).
  A block that builds a DAG must leave a DAG object, and the same code, put in a DAGs
  folder, must load into a ``DagBag`` without import errors, giving the same DAGs. A DAG
  block preceded by ``<!-- test: dag.test -->`` is also run with ``dag.test()`` against the
  emulator and must succeed (for DAGs that write only to local files).
* A ```` ```bash ```` block runs only when ``<!-- test: run -->`` precedes it (commands
  that start a server or need a real key are shown, not run).
* ```` ```json ```` blocks must parse.
* A Python block that must not run (a real bucket, a real key) is preceded by
  ``<!-- no-test: REASON -->``, and the reason is required; it is still compiled.
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

from tests.conftest import API_KEY, DAGS_FOLDER, REPO, connection_json

DOCS = REPO / "docs"
#: The Markdown whose samples a reader copies: the site's pages and the README.
MARKDOWN = [*sorted(DOCS.rglob("*.md")), REPO / "README.md"]
FENCE_LINE = re.compile(r"^[ \t]*```", re.MULTILINE)
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
        return f"{self.path.relative_to(REPO).as_posix()}:{self.line}"


def collect_samples() -> list[Sample]:
    samples = []
    for path in MARKDOWN:
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
SKIPPED = [s for s in SAMPLES if s.lang in ("python", "py") and s.marker == "no-test"]
BASH = [s for s in SAMPLES if s.lang in ("bash", "sh", "shell") and s.marker == "test"]
JSON = [s for s in SAMPLES if s.lang == "json"]


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_code_fence_is_closed(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    fences = FENCE_LINE.findall(text)
    assert len(fences) % 2 == 0, f"{path.name}: {len(fences)} fence lines, one is never closed"
    # Every fence line belongs to a block the samples above were read from (none is nested
    # or indented out of reach of the sample runner).
    assert 2 * len(FENCE.findall(text)) == len(fences), f"{path.name}: a fence the sample reader cannot pair"


def test_docs_have_samples_and_every_skipped_one_says_why() -> None:
    assert len(PYTHON) >= 20, f"only {len(PYTHON)} runnable Python samples"
    readme = [s for s in PYTHON if s.path.name == "README.md"]
    assert len(readme) >= 4, f"README.md: only {len(readme)} runnable Python samples"
    assert len(SKIPPED) <= 2, f"too many samples skipped: {[s.id for s in SKIPPED]}"
    for sample in SAMPLES:
        if sample.marker == "no-test":
            assert sample.lang in ("python", "py"), f"{sample.id}: no-test marks only Python blocks"
            assert len(sample.marker_text) >= 10, f"{sample.id}: <!-- no-test: ... --> needs a reason"
        if sample.marker == "test" and sample.lang in ("python", "py"):
            assert sample.marker_text == "dag.test", (
                f"{sample.id}: a Python block takes <!-- test: dag.test -->"
            )
        elif sample.marker == "test":
            assert sample.marker_text == "run", f"{sample.id}: a shell block takes <!-- test: run -->"


@pytest.mark.parametrize("sample", SKIPPED, ids=lambda s: s.id)
def test_skipped_python_sample_compiles(sample: Sample) -> None:
    compile(sample.code, sample.id, "exec")


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
def test_python_sample_runs(sample: Sample, sample_env, request: pytest.FixtureRequest) -> None:
    from airflow.sdk import DAG

    namespace: dict[str, object] = {"__name__": "__docs_sample__"}
    # Register the source so a failing sample's traceback shows its lines.
    linecache.cache[sample.id] = (len(sample.code), None, sample.code.splitlines(True), sample.id)
    code = compile(sample.code, sample.id, "exec")
    exec(code, namespace)
    if re.search(r"\bDAG\(|@dag\b", sample.code):
        built = {v.dag_id for v in namespace.values() if isinstance(v, DAG)}
        assert built, f"{sample.id} builds no DAG"
        assert _dag_bag_loads(sample) == built
        if sample.marker == "test" and sample.marker_text == "dag.test":
            request.getfixturevalue("airflow_db")
            for dag_id in sorted(built):
                assert _dag_test(sample, dag_id) == "success", f"{sample.id}: dag.test() of {dag_id}"
    assert sample_env.ledger()["accounts"][API_KEY]["balance"] >= 0


def _dag_test(sample: Sample, dag_id: str) -> str:
    """``dag.test()`` the sample's DAG from the session's DAGs folder (dag.test() runs a bundle's DAGs)."""
    import pendulum

    from tests.dag_support import run_dag

    path = DAGS_FOLDER / f"docs_sample_{dag_id}.py"
    # Delivered into this test's directory (the working directory), not the page's fixed
    # /tmp path: test_getting_started runs the same page's DAG there and must pay once; run at
    # once on another pytest-xdist worker, it found this run's video and paid nothing.
    code = sample.code.replace("file:///tmp/seedance-videos/", f"file://{Path.cwd()}/seedance-videos/")
    path.write_text(code, encoding="utf-8")
    try:
        return run_dag(DAGS_FOLDER, dag_id, logical_date=pendulum.datetime(2026, 1, 1, tz="UTC")).state
    finally:
        path.unlink()


def _dag_bag_loads(sample: Sample) -> set[str]:
    """The sample as a file in a DAGs folder, loaded as the DAG processor would: its DAG ids."""
    folder = Path.cwd() / "dags"
    folder.mkdir()
    (folder / "sample_dag.py").write_text(sample.code, encoding="utf-8")
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    bag = DagBag(dag_folder=str(folder))  # examples are off (AIRFLOW__CORE__LOAD_EXAMPLES)
    assert not bag.import_errors, f"{sample.id}: {bag.import_errors}"
    return set(bag.dag_ids)


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
