"""A Secret the operator may not read is a condition naming the field, not a retry loop."""

from __future__ import annotations

from typing import Any

import pytest

from dayzero.api.v1alpha1 import ModelDeployment
from dayzero.controller import modeldeployment as md
from dayzero.kube import KubeError
from dayzero.render.modeldeployment import Images


class ForbiddenKube:
    """The API server's answer to a get on a Secret outside the operator's RBAC."""

    def get(self, kind: str, namespace: str | None, name: str) -> Any:
        raise KubeError(403, "Forbidden", f'secrets "{name}" is forbidden')


def test_a_forbidden_token_secret_names_the_field() -> None:
    def fetch(repo: str, revision: str, token: str | None) -> Any:
        raise AssertionError("the Hub must not be asked without the token")

    deps = md.Deps(
        kube=ForbiddenKube(),  # type: ignore[arg-type]
        images=Images(vllm="v", transformers="t", dayzero="d"),
        fetch=fetch,
        probe=lambda _url: None,
    )
    mdep = ModelDeployment.model_validate(
        {
            "spec": {
                "source": {"hub": {"repo": "org/gated", "revision": "main"}},
                "weightCache": {"hfTokenSecretRef": {"name": "hf-token", "key": "token"}},
            }
        }
    )
    with pytest.raises(md.SecretForbiddenError) as caught:
        md._resolve(deps, mdep, "team-a")
    message = str(caught.value)
    assert message.startswith("spec.weightCache.hfTokenSecretRef")
    assert "team-a/hf-token" in message
