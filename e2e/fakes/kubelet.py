"""What a kubelet does for a mounted ConfigMap, for a gateway running outside the cluster.

The kubelet projects a ConfigMap into a pod's volume by writing the new content and swapping it in
atomically; ``ConfigMapSync`` does the same into a plain file (write, then rename), polling with
kubectl, so a real ``dayzero gateway`` process can hot-reload what the operator wrote.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
from pathlib import Path


class ConfigMapSync:
    """Projects the ConfigMap's routing.yaml into a file, like a kubelet volume (atomically)."""

    def __init__(
        self, env: dict[str, str], namespace: str, path: Path, name: str = "dayzero-routing"
    ) -> None:
        self.env, self.namespace, self.path, self.name = env, namespace, path, name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def text(self) -> str | None:
        out = subprocess.run(
            ["kubectl", "get", "cm", self.name, "-n", self.namespace, "-o", "json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if out.returncode != 0:
            return None
        return json.loads(out.stdout).get("data", {}).get("routing.yaml")

    def sync(self) -> None:
        text = self.text()
        if text is not None and (not self.path.exists() or self.path.read_text() != text):
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(self.path)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            with contextlib.suppress(Exception):
                self.sync()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
