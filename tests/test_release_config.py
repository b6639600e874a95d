"""The release configuration names one list of CPython versions everywhere.

The "Programming Language :: Python :: 3.x" classifiers in pyproject.toml are
that list: `make wheels` and .ci/run build and test one wheel per entry
(.ci/pythons reads them), requires-python must admit exactly those versions,
and the GitHub workflow must build and test each of them on every platform.
A version added in one place and not the others fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "wheels.yml"


def supported_versions() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    prefix = "Programming Language :: Python :: "
    versions = [c.removeprefix(prefix) for c in project["classifiers"] if c.startswith(prefix)]
    return sorted((v for v in versions if re.fullmatch(r"3\.\d+", v)), key=minor)


def minor(version: str) -> int:
    return int(version.split(".")[1])


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_requires_python_admits_exactly_the_supported_versions():
    versions = supported_versions()
    spec = SpecifierSet(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    )
    for version in versions:
        assert f"{version}.0" in spec
    assert f"3.{minor(versions[0]) - 1}.99" not in spec
    assert f"3.{minor(versions[-1]) + 1}.0" not in spec


@pytest.mark.skipif(shutil.which("bash") is None, reason=".ci/pythons is a bash script")
def test_make_wheels_builds_or_names_as_missing_every_supported_version():
    run = subprocess.run(
        ["bash", str(ROOT / ".ci" / "pythons")], capture_output=True, text=True, check=False
    )
    found = [line.split()[0] for line in run.stdout.splitlines()]
    warning = re.search(r"WARNING: no CPython ([\d. ]+)", run.stderr)
    missing = warning.group(1).split() if warning else []
    assert sorted(found + missing, key=minor) == supported_versions(), (run.stdout, run.stderr)


def test_the_workflow_linux_jobs_run_ci_run_on_every_supported_version():
    linux = workflow()["jobs"]["linux"]
    runners = {entry["runner"] for entry in linux["strategy"]["matrix"]["include"]}
    assert runners == {"ubuntu-latest", "ubuntu-24.04-arm"}  # x86_64 and aarch64
    steps = linux["steps"]
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python"))
    assert sorted(setup["with"]["python-version"].split(), key=minor) == supported_versions()
    assert any(s.get("run") == "bash .ci/run" for s in steps)


def test_the_workflow_builds_and_tests_every_version_on_macos_and_windows():
    matrix = workflow()["jobs"]["other"]["strategy"]["matrix"]
    assert matrix["python"] == supported_versions()
    runners = {entry["runner"] for entry in matrix["include"]}
    assert runners == {"macos-15-intel", "macos-latest", "windows-latest"}
