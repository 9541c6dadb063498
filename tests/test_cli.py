"""The dayzero console script."""

import subprocess
import sys

import pytest
import yaml

from dayzero import __version__
from dayzero.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"dayzero {__version__}"


@pytest.mark.timeout(10)  # renders every CRD (1.3 s alone, over 2 s on a loaded 2-core machine)
def test_crds_prints_three_crds(capsys):
    assert main(["crds"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["metadata"]["name"] for d in docs] == [
        "modeldeployments.dayzero.dev",
        "lanes.dayzero.dev",
        "gauntlets.dayzero.dev",
    ]


@pytest.mark.timeout(10)  # renders every generated file three times
def test_check_reports_drift(tmp_path, capsys):
    assert main(["crds", "--write", "--root", str(tmp_path)]) == 0
    assert main(["crds", "--check", "--root", str(tmp_path)]) == 0
    (tmp_path / "crds" / "dayzero.dev_lanes.yaml").write_text("edited by hand\n")
    (tmp_path / "crds" / "stray.yaml").write_text("x: 1\n")
    assert main(["crds", "--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "crds/dayzero.dev_lanes.yaml differs" in err
    assert "crds/stray.yaml is not generated" in err


@pytest.mark.timeout(30)  # starts a Python process, which a loaded CI core makes slow
def test_console_script_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "dayzero.cli", "version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("dayzero ")
