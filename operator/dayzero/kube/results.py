"""Hand an evaluation's result to the operator: the one write an evaluation Job may make.

The Job's ServiceAccount may only get, update and patch the result ConfigMap the operator created
for it, so this is a merge patch of ``data`` on that object and nothing else.
"""

from __future__ import annotations

from .client import Kube


def write_result(
    namespace: str, name: str, data: dict[str, str], kubeconfig: str | None = None
) -> None:
    """Merge ``data`` into ConfigMap ``namespace/name`` (in-cluster config, else $KUBECONFIG).

    Raises KubeError when there is no cluster config or the API refuses the patch.
    """
    kube = Kube.from_config(kubeconfig)
    try:
        kube.patch("ConfigMap", namespace, name, {"data": data})
    finally:
        kube.close()
