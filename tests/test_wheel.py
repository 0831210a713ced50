"""memcli as people install it: the sdist builds a wheel, the wheel installs into a fresh
virtual environment outside the checkout, and the installed `memcli` finds its registry,
its memory adapter and its memory, as a checkout does.

Offline and quick: the sdist and wheel are built without build isolation (setuptools
from the dev extra), the wheel is installed with `--no-deps --no-index`, and only then is
the project venv's site-packages put on the new environment's path (a .pth file naming
that folder, never the checkout), for the dependencies. Lines of a .pth file are plain
path entries, so the checkout's editable finder (itself a .pth in that folder) stays off.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.model]

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["registry.json", "smollm2-135m-memllm-lora.gguf", "all-minilm-l6-v2-q8_0.gguf"]
NOT_IN_SDIST = (".venv/", "__pycache__/", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                ".hypothesis", "bench/results", "recipes/work", "build/", "dist/",
                ".pyc")  # fmt: skip


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs
    )
    assert result.returncode == 0, f"{args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The sdist, built from the checkout, and the wheel, built from the unpacked sdist
    (so a wheel proves that the sdist holds what a build needs)."""
    out = tmp_path_factory.mktemp("dist")
    sdist = out / _run(
        sys.executable, "-c",
        "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))",
        out, cwd=ROOT,
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    with tarfile.open(sdist) as tar:
        tar.extractall(out / "src", filter="data")
    (unpacked,) = (out / "src").iterdir()
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", out / "wheel", unpacked)  # fmt: skip
    (wheel,) = (out / "wheel").glob("memcli-*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Path:
    """A fresh venv outside the checkout with the wheel in it; its bin folder."""
    venv = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", "--clear", venv)
    python = venv / "bin" / "python"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "-q", built["wheel"])  # fmt: skip
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    assert str(ROOT) not in deps  # the dependencies, never the checkout's own source
    Path(site.stdout.strip(), "_memcli_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    return venv / "bin"


def test_sdist_holds_the_build_and_no_junk(built):
    with tarfile.open(built["sdist"]) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    for needed in ["pyproject.toml", "README.md", "CHANGELOG.md", "memcli/__init__.py",
                   "memcli/py.typed", "memcli/store/rel_info.json", "memcli/cli/app.py",
                   *(f"memcli/models/{name}" for name in SHIPPED)]:  # fmt: skip
        assert needed in names, needed
    junk = [name for name in names if any(part in name for part in NOT_IN_SDIST)]
    assert junk == []


def test_wheel_carries_the_package_data(built):
    names = zipfile.ZipFile(built["wheel"]).namelist()
    for needed in ["memcli/py.typed", "memcli/store/rel_info.json",
                   *(f"memcli/models/{name}" for name in SHIPPED)]:  # fmt: skip
        assert needed in names, needed
    assert not [name for name in names if name.startswith(("tests/", "bench/", "recipes/"))]
    metadata = (
        zipfile.ZipFile(built["wheel"]).read(f"memcli-{_version()}.dist-info/METADATA").decode()
    )
    # the train extra stays on the CPU build of torch
    assert 'Requires-Dist: torch==2.13.0; extra == "train"' in metadata


def test_installed_memcli_works_outside_the_checkout(installed, tmp_path):
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "MEMCLI_DB")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["MEMCLI_HOME"] = str(tmp_path / "home")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    assert ROOT not in cwd.resolve().parents

    def memcli(*args: str) -> subprocess.CompletedProcess[str]:
        return _run(installed / "memcli", *args, cwd=cwd, env=env)

    where = _run(
        installed / "python", "-c",
        "import memcli, memcli.paths as p; print(memcli.__file__, p.shipped('registry.json'))",
        cwd=cwd, env=env,
    ).stdout.split()  # fmt: skip
    venv = installed.parent.resolve()
    assert all(venv in Path(path).resolve().parents for path in where), where

    assert memcli("--version").stdout == f"memcli {_version()}\n"
    listed = memcli("models", "list").stdout
    for name in ("smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b"):
        assert name in listed
    assert memcli("mem", "add", "Lake Geneva", "country", "Switzerland").stdout == "1\n"
    (fact,) = [json.loads(line) for line in memcli("mem", "ls", "--json").stdout.splitlines()]
    assert [fact["subject"], fact["relation"], fact["object"]] == ["Lake Geneva", "country",
                                                                    "Switzerland"]  # fmt: skip

    answer = memcli("ask", "Which country is Lake Geneva in?").stdout
    assert "1: Lake Geneva >> country >> Switzerland" in answer  # the read went to memory
    assert "Switzerland" in answer.split("Facts read:")[0]
    model = memcli("chat", "-e", "/model").stdout
    assert "+adapter" in model and "adapter: yes" in model, model
