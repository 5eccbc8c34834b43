"""The API guide's own code examples must run against the emulator unchanged.

``guide_examples/`` holds byte-for-byte copies of the guide's Python and JavaScript examples;
only the ``API_KEY`` and ``BASE_URL`` lines are substituted. With 0-second generations the
first status poll already succeeds, so the examples' 10-second sleeps are never reached.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_seedance.emulator.testing import EmulatorProcess

EXAMPLES = Path(__file__).parent / "guide_examples"
KEY = "sk-guide-example-key-0042"


@pytest.fixture(scope="module")
def instant_emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(api_keys={KEY: 1000}, generation_seconds=0) as emulator:
        yield emulator


def _adapt(source: str, emulator: EmulatorProcess, key_line: str, url_line: str) -> str:
    """Substitute exactly the key and base URL lines; fail if the copy no longer has them."""
    originals = {
        key_line.format(value="YOUR_API_KEY"): key_line.format(value=KEY),
        url_line.format(value="https://seedanceapi.org/v1"): url_line.format(value=f"{emulator.base_url}/v1"),
    }
    for old, new in originals.items():
        assert source.count(old) == 1, old
        source = source.replace(old, new)
    return source


def _check_output(stdout: str, emulator: EmulatorProcess, created: str, video: str) -> None:
    task_id = re.search(created + r"\s*(\S+)", stdout)
    assert task_id, stdout
    url = re.search(video + r"\s*(\S+)", stdout)
    assert url, stdout
    assert url.group(1) == f"{emulator.base_url}/videos/{task_id.group(1)}.mp4"
    download = requests.get(url.group(1), timeout=10)
    assert download.status_code == 200
    assert download.content[4:8] == b"ftyp"
    tasks = emulator.tasks()
    assert [t["task_id"] for t in tasks] == [task_id.group(1)]
    assert tasks[0]["request"] == {
        "prompt": "A cinematic shot of mountains at sunrise with flowing clouds",
        "aspect_ratio": "16:9",
        "resolution": "720p",
        "duration": "8",
    }


def test_guide_python_example_runs_unchanged(instant_emulator: EmulatorProcess, tmp_path: Path) -> None:
    instant_emulator.reset()
    source = _adapt(
        (EXAMPLES / "python_example.py.txt").read_text(encoding="utf-8"),
        instant_emulator,
        key_line='API_KEY = "{value}"',
        url_line='BASE_URL = "{value}"',
    )
    script = tmp_path / "guide_example.py"
    script.write_text(source, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    _check_output(result.stdout, instant_emulator, "Task created:", "Video URL:")
    assert instant_emulator.ledger()["accounts"][KEY]["charged"] == 28


def test_guide_javascript_example_runs_unchanged(instant_emulator: EmulatorProcess, tmp_path: Path) -> None:
    instant_emulator.reset()
    source = _adapt(
        (EXAMPLES / "javascript_example.mjs.txt").read_text(encoding="utf-8"),
        instant_emulator,
        key_line='const API_KEY = "{value}";',
        url_line='const BASE_URL = "{value}";',
    )
    script = tmp_path / "guide_example.mjs"  # the example uses top-level await: an ES module
    script.write_text(source, encoding="utf-8")
    node = shutil.which("node")
    assert node is not None, "node is not installed: run make system-deps"
    result = subprocess.run([node, str(script)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    _check_output(result.stdout, instant_emulator, "Task created:", "Video URL:")
