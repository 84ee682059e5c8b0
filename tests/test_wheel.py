"""The wheel is self-contained: built from this tree, installed into a fresh venv, `genads demo --fast` runs
from outside the repository (demo data and market configs come from site-packages, not from a clone).

The fresh venv sees the test environment's installed dependencies through a ``.pth`` path line (no download,
and that directory's own ``.pth`` files, the editable install's among them, are not run), while genads itself
comes only from the wheel: the test checks that ``import genads`` resolves inside the fresh venv.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*cmd: object, cwd: Path, env: dict | None = None, timeout: float = 900) -> str:
    out = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{cmd}: exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", ROOT, "-w", dist, cwd=dist)
    (path,) = dist.glob("genads-*.whl")
    return path


def test_wheel_holds_the_demo_data_configs_and_licence(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("events.csv.gz", "catalogue.csv.gz", "README.md"):
        assert f"genads/_bundled/demo/{data}" in names
    for config in ROOT.joinpath("configs").glob("*.yaml"):
        assert f"genads/_bundled/configs/{config.name}" in names
    assert any(n.startswith("genads/serve/console/templates/") for n in names)
    assert any(n.endswith("/LICENSE") or n.endswith("licenses/LICENSE") for n in names)


def test_installed_wheel_runs_the_demo_outside_the_repo(wheel, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}  # nothing but the wheel
    env["OMP_NUM_THREADS"] = "1"
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path, env=env)
    py = venv / "bin" / "python"
    fresh_site = Path(run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path,
                          env=env).strip())
    (fresh_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")  # the dependencies, not genads
    run(py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel, cwd=tmp_path, env=env)
    where = run(py, "-c", "import genads, genads.bundled as b; print(genads.__file__); print(b.DEMO_DATA)", cwd=tmp_path,
                env=env)
    assert all(line.startswith(str(fresh_site)) for line in where.split()), where
    run(venv / "bin" / "genads", "demo", "--fast", "--out", tmp_path / "demo", cwd=tmp_path, env=env, timeout=1800)
    assert (tmp_path / "demo" / "report.html").is_file() and (tmp_path / "demo" / "metrics.json").is_file()
    run(venv / "bin" / "genads", "simulate", "--config", "configs/market_tiny.yaml", "--seeds", "1", "--out",
        tmp_path / "sim", cwd=tmp_path, env=env)  # the documented path, served from the packaged configs
    assert (tmp_path / "sim" / "results.json").is_file()
