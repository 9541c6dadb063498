"""`dayzero lane`: bad input is refused before any cluster is contacted, naming the field."""

from __future__ import annotations

import pytest

from dayzero.cli import main


def test_promote_refuses_a_tag_that_is_not_a_dns_label(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lane", "promote", "chat", "Not_A_Label", "qwen"]) == 2
    assert "tag: 'Not_A_Label' is not a DNS label" in capsys.readouterr().err


def test_a_missing_kubeconfig_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    missing = tmp_path / "nope"
    assert main(["lane", "rollback", "chat", "--kubeconfig", str(missing)]) == 1
    err = capsys.readouterr().err
    assert "--kubeconfig" in err
    assert str(missing) in err
