"""The distribution a user installs: build it, check it, install it into a clean venv.

``python -m build`` makes the sdist and the wheel, ``twine check`` validates their
metadata, and the wheel goes into a fresh ``uv venv`` with only ``apache-airflow`` at the
version running these tests (and the same constraints file ``make`` uses), where Airflow
must discover the provider. uv's cache keeps the install to seconds.
"""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent
UV = str(BIN / "uv")
AIRFLOW_VERSION = metadata.version("apache-airflow")


def source_version() -> str:
    text = (REPO / "airflow_provider_seedance" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match, "airflow_provider_seedance/__init__.py must define __version__"
    return match.group(1)


@dataclass
class Dist:
    wheel: Path
    sdist: Path
    venv: Path


def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path = REPO) -> str:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd
    )
    assert done.returncode == 0, f"{args} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dist]:
    out = tmp_path_factory.mktemp("dist")
    env = os.environ.copy()
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # build's --installer uv finds uv here
    run(sys.executable, "-m", "build", "--installer", "uv", "--outdir", out, REPO, env=env)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    venv = tmp_path_factory.mktemp("clean-venv") / "venv"
    run(UV, "venv", "--quiet", "--python", sys.executable, venv)
    constraints = REPO / "constraints" / f"airflow-{AIRFLOW_VERSION}.txt"
    extra = ["--constraint", str(constraints)] if constraints.exists() else []
    install_env = {**os.environ, "VIRTUAL_ENV": str(venv)}
    install_env.pop("PYTHONPATH", None)
    run(
        UV, "pip", "install", "--quiet", "--python", venv / "bin" / "python", *extra,
        wheel, f"apache-airflow=={AIRFLOW_VERSION}",
        env=install_env, timeout=180,
    )  # fmt: skip
    yield Dist(wheel=wheel, sdist=sdist, venv=venv)


def clean_env(tmp_path: Path) -> dict[str, str]:
    """An environment that cannot see this checkout: a new AIRFLOW_HOME, no PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return env


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_twine_accepts_the_sdist_and_the_wheel(dist: Dist) -> None:
    out = run(sys.executable, "-m", "twine", "check", "--strict", dist.sdist, dist.wheel)
    assert out.count("PASSED") == 2, out


def test_version_comes_from_the_package_init_only(dist: Dist) -> None:
    version = source_version()
    meta = wheel_metadata(dist.wheel)
    assert meta["Version"] == version
    assert dist.wheel.name == f"airflow_provider_seedance-{version}-py3-none-any.whl"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^dynamic = \["version"\]', pyproject, re.MULTILINE)
    assert not re.search(r"^version\s*=", pyproject, re.MULTILINE), "a second version in pyproject.toml"
    from airflow_provider_seedance.get_provider_info import get_provider_info

    assert get_provider_info()["versions"] == [version]


def test_wheel_declares_airflow_provider_classifiers_and_entry_points(dist: Dist) -> None:
    meta = wheel_metadata(dist.wheel)
    classifiers = meta.get_all("Classifier") or []
    assert "Framework :: Apache Airflow" in classifiers
    assert "Framework :: Apache Airflow :: Provider" in classifiers
    with zipfile.ZipFile(dist.wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        entry_points = archive.read(name).decode()
    assert "[apache_airflow_provider]" in entry_points
    assert "provider_info = airflow_provider_seedance.get_provider_info:get_provider_info" in entry_points
    assert "seedance-emulator = airflow_provider_seedance.emulator.cli:main" in entry_points


def test_wheel_ships_type_marker_emulator_clips_plugin_files_and_facet_schema(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as archive:
        names = set(archive.namelist())
    package = REPO / "airflow_provider_seedance"
    assert "airflow_provider_seedance/py.typed" in names
    clips = sorted(p.relative_to(REPO).as_posix() for p in (package / "emulator" / "clips").glob("*.mp4"))
    assert len(clips) == 14
    assert set(clips) <= names, set(clips) - names
    plugin_files = [
        p.relative_to(REPO).as_posix()
        for sub in ("static", "templates")
        for p in (package / "plugins" / sub).iterdir()
        if p.is_file()
    ]
    assert plugin_files and set(plugin_files) <= names, set(plugin_files) - names
    # The lineage run facet's schema, which its _schemaURL names (docs/lineage.md).
    assert "airflow_provider_seedance/lineage/SeedanceRunFacet.json" in names
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]


def test_clean_venv_airflow_lists_the_provider_and_its_hook(dist: Dist, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    airflow = dist.venv / "bin" / "airflow"
    listing = subprocess.Popen(
        [str(airflow), "providers", "list", "--output", "json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    probe = run(
        dist.venv / "bin" / "python",
        "-c",
        "import airflow_provider_seedance as p, json\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "pm = ProvidersManager()\n"
        "hook = pm.hooks['seedance']\n"
        "print(json.dumps({'file': p.__file__, 'version': p.__version__,\n"
        "  'hook': hook.hook_class_name, 'testable': hook.connection_testable,\n"
        "  'provider': pm.providers['airflow-provider-seedance'].version}))",
        env=env,
        cwd=tmp_path,  # not the checkout: `python -c` puts the working directory on sys.path
    )
    out, err = listing.communicate(timeout=120)
    assert listing.returncode == 0, err[-3000:]
    providers = {row["package_name"]: row["version"] for row in json.loads(out[out.index("[") :])}
    assert providers.get("airflow-provider-seedance") == source_version()
    info = json.loads(probe.strip().splitlines()[-1])
    assert info["file"].startswith(str(dist.venv))  # the wheel's copy, not this checkout
    assert info["hook"] == "airflow_provider_seedance.hooks.seedance.SeedanceHook" and info["testable"]
    assert info["version"] == info["provider"] == source_version()


def test_clean_venv_runs_the_emulator_from_the_wheel(dist: Dist, tmp_path: Path) -> None:
    out = run(dist.venv / "bin" / "seedance-emulator", "--help", env=clean_env(tmp_path), cwd=tmp_path)
    assert "--generation-seconds" in out and "--state-file" in out


def test_wheel_and_sdist_ship_the_apache_license_the_metadata_names(dist: Dist) -> None:
    meta = wheel_metadata(dist.wheel)
    assert meta["License-Expression"] == "Apache-2.0"
    with zipfile.ZipFile(dist.wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        text = archive.read(name).decode()
    assert "Apache License" in text and "Version 2.0" in text
    import tarfile

    with tarfile.open(dist.sdist) as sdist:
        assert any(member.name.endswith("/LICENSE") for member in sdist.getmembers())
