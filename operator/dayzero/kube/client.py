"""The only Kubernetes I/O in dayzero.

Everything above this layer works on plain manifest dicts. Writes are server-side apply under one
field manager, so re-applying an unchanged object is a no-op and fields owned by others (a user's
``kubectl scale``, an HPA) are never clobbered. Client exceptions become :class:`KubeError`, which
says whether a retry can help.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from ..api.v1alpha1 import API_VERSION

Manifest = dict[str, Any]
FIELD_MANAGER = "dayzero-operator"


class KubeError(Exception):
    """A failed API call, with the HTTP status and whether retrying may succeed."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409

    @property
    def transient(self) -> bool:
        """Throttling, server errors and connection failures (status 0) are worth a retry."""
        return self.status in (0, 429) or self.status >= 500


@dataclass(frozen=True)
class Kind:
    """Where a kind lives in the API."""

    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        return base + (f"/{name}" if name else "")


# The kinds dayzero reads or writes; a static table keeps start-up free of discovery calls.
KINDS: dict[str, Kind] = {
    "ModelDeployment": Kind(API_VERSION, "modeldeployments"),
    "Lane": Kind(API_VERSION, "lanes"),
    "Gauntlet": Kind(API_VERSION, "gauntlets"),
    "StatefulSet": Kind("apps/v1", "statefulsets"),
    "Service": Kind("v1", "services"),
    "ConfigMap": Kind("v1", "configmaps"),
    "Secret": Kind("v1", "secrets"),
    "Pod": Kind("v1", "pods"),
    "PersistentVolumeClaim": Kind("v1", "persistentvolumeclaims"),
    "Event": Kind("v1", "events"),
    "Job": Kind("batch/v1", "jobs"),
    "PodDisruptionBudget": Kind("policy/v1", "poddisruptionbudgets"),
    "Lease": Kind("coordination.k8s.io/v1", "leases"),
    "ServiceAccount": Kind("v1", "serviceaccounts"),
    "Role": Kind("rbac.authorization.k8s.io/v1", "roles"),
    "RoleBinding": Kind("rbac.authorization.k8s.io/v1", "rolebindings"),
    "Node": Kind("v1", "nodes", namespaced=False),
    "Namespace": Kind("v1", "namespaces", namespaced=False),
}


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise KubeError(400, "UnknownKind", f"dayzero does not handle kind {name!r}") from None


class Kube:
    """A thin JSON client over the Kubernetes API for manifest dicts."""

    def __init__(self, api: k8s.ApiClient, field_manager: str = FIELD_MANAGER) -> None:
        self._api = api
        self.field_manager = field_manager

    @classmethod
    def from_config(cls, kubeconfig: str | None = None) -> Kube:
        """In-cluster config when running in a pod, else the kubeconfig file."""
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)
        except k8s_config.ConfigException:
            try:
                k8s_config.load_kube_config(
                    config_file=kubeconfig, client_configuration=configuration
                )
            except (k8s_config.ConfigException, OSError) as exc:
                where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
                why = f"no cluster: not in a pod, and {where}: {exc}"
                raise KubeError(0, "NoConfig", why) from None

        return cls(k8s.ApiClient(configuration))

    def close(self) -> None:
        self._api.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: object = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Manifest:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self._api.param_serialize(
            method=method,
            resource_path=path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*request, _request_timeout=timeout)
            raw = response.read()
        except ApiException as exc:
            raise _to_error(exc) from None
        except OSError as exc:
            raise KubeError(0, "ConnectionError", str(exc)) from None
        if not 200 <= response.status <= 299:
            raise _status_error(response.status, raw)
        return cast(Manifest, json.loads(raw)) if raw else {}

    def get(self, kind: str, namespace: str | None, name: str) -> Manifest | None:
        """The object, or None when it does not exist."""
        try:
            return self._call("GET", kind_of(kind).path(namespace, name))
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    def list(
        self, kind: str, namespace: str | None, label_selector: str | None = None
    ) -> list[Manifest]:
        query = [("labelSelector", label_selector)] if label_selector else []
        items = self._call("GET", kind_of(kind).path(namespace), query=query).get("items", [])
        return cast(list[Manifest], items)

    def apply(
        self, obj: Manifest, *, subresource: str | None = None, field_manager: str | None = None
    ) -> Manifest:
        """Server-side apply of a whole object (or its status) under our field manager."""
        meta = obj["metadata"]
        path = kind_of(obj["kind"]).path(meta.get("namespace"), meta["name"])
        if subresource:
            path += f"/{subresource}"
        query = [("fieldManager", field_manager or self.field_manager), ("force", "true")]
        return self._call(
            "PATCH", path, body=obj, query=query, content_type="application/apply-patch+yaml"
        )

    def patch(
        self, kind: str, namespace: str | None, name: str, patch: Manifest, *, subresource: str = ""
    ) -> Manifest:
        """A JSON merge patch, for the few fields dayzero shares with users (annotations)."""
        path = kind_of(kind).path(namespace, name) + (f"/{subresource}" if subresource else "")
        return self._call("PATCH", path, body=patch, content_type="application/merge-patch+json")

    def create(self, obj: Manifest) -> Manifest:
        """Create, failing with a conflict if it exists: the primitive for never double-creating."""
        meta = obj["metadata"]
        return self._call("POST", kind_of(obj["kind"]).path(meta.get("namespace")), body=obj)

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """Delete with background propagation; False when it was already gone."""
        body = {"propagationPolicy": "Background"}
        try:
            self._call("DELETE", kind_of(kind).path(namespace, name), body=body)
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True


def _status_error(status: int, raw: bytes | str | None) -> KubeError:
    try:
        payload = json.loads(raw or b"{}")
    except ValueError:
        payload = {"message": str(raw)[:500]}
    return KubeError(status, str(payload.get("reason", "")), str(payload.get("message", "")))


def _to_error(exc: ApiException) -> KubeError:
    return _status_error(int(exc.status or 0), exc.body)
