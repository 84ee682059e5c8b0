"""The Dockerfile, linted (CI has no image registry to build from): CPU torch pinned before the package, the
package's own files copied (the wheel's bundled data included), state/ on a named volume (documented), not run as root."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_pins_cpu_torch_first_and_documents_state_on_a_volume():
    text = (ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    runs = [i for i, line in enumerate(lines) if line.startswith("RUN pip install")]
    torch_line = next(i for i in runs if "torch==" in lines[i])
    assert "download.pytorch.org/whl/cpu" in lines[torch_line]
    pinned = re.search(r"torch==([\d.]+)", lines[torch_line]).group(1)
    assert pinned in (ROOT / "Makefile").read_text()  # the same pin as `make setup`
    assert torch_line < min(i for i in runs if "pip install ." in lines[i])
    for path in ("configs", "data/demo", "src", "pyproject.toml", "LICENSE"):
        assert any(line.startswith("COPY") and path in line for line in lines), path
    assert not any(line.startswith("VOLUME") for line in lines)  # it would shadow a mounted bundle's state/
    assert "genads-state:/bundle/state" in text  # the documented run keeps state on a named volume
    user = next(line for line in lines if line.startswith("USER"))
    assert user.split()[1] != "root"
    assert lines.index(user) > max(i for i, line in enumerate(lines) if line.startswith("RUN pip install"))
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
