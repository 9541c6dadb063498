"""A fake Hugging Face Hub on loopback, speaking enough of the real API for huggingface-hub 2.4.

Why a server and not a mock transport: the operator, the watcher and the demo run huggingface-hub
itself (``HfApi.model_info``, ``hf_hub_download``, ``list_models``), so the fake must answer what
that client really sends and fail the way the real Hub fails: the ``X-Error-Code`` header
(``GatedRepo``, ``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) that
``hf_raise_for_status`` reads, ``Retry-After`` and ``RateLimit`` on a 429, and the
``X-Repo-Commit``/``ETag``/``Content-Length`` headers ``hf_hub_download`` needs on a file. Every
request is logged so that a test can assert what was asked, e.g. that no weight file was.

It binds 127.0.0.1 only and never forwards anything::

    with FakeHub([FakeModel("acme/tiny", config={...}, parameters={"BF16": 10})]) as hub:
        fetch_model_facts("acme/tiny", endpoint=hub.url)
        assert not hub.requested_files(".safetensors")
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

GatedMode = Literal[False, "auto", "manual"]
FaultScope = Literal["api", "resolve", "any"]

_API_MODEL = re.compile(r"^/api/models/(?P<repo>[^/]+(?:/[^/]+)?)(?:/revision/(?P<rev>[^/]+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+(?:/[^/]+)?)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_DEFAULT_FIELDS = (
    "id",
    "author",
    "sha",
    "createdAt",
    "lastModified",
    "private",
    "gated",
    "disabled",
    "downloads",
    "likes",
    "library_name",
    "pipeline_tag",
    "tags",
    "cardData",
    "config",
    "safetensors",
    "siblings",
)
_LIST_FIELDS = (
    "id",
    "likes",
    "downloads",
    "private",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
)
_SORT_KEYS = {"createdAt", "lastModified", "downloads", "likes", "id"}


def fake_sha(*parts: str) -> str:
    """A stable 40-hex commit SHA derived from ``parts`` (so tests can predict it)."""
    return hashlib.sha1("\0".join(parts).encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class FakeModel:
    """One repository on the fake Hub, at one commit."""

    repo: str
    """``org/name``."""
    config: Mapping[str, Any] | None = None
    """config.json; None for a repository without one."""
    parameters: Mapping[str, int] = field(default_factory=dict)
    """safetensors parameter counts by dtype, as the API's ``safetensors.parameters``."""
    sha: str = ""
    """The commit every revision of the repo resolves to; derived from ``repo`` when empty."""
    branches: tuple[str, ...] = ("main",)
    """Revision names that resolve to ``sha`` (the SHA itself always does)."""
    gated: GatedMode = False
    """Gated repos answer metadata to anyone but files only to ``FakeHub.authorized`` tokens."""
    private: bool = False
    """Private repos answer nothing without an authorized token (404, as the Hub does)."""
    library_name: str | None = "transformers"
    pipeline_tag: str | None = "text-generation"
    tags: tuple[str, ...] = ()
    license: str | None = "apache-2.0"
    created_at: str = "2026-01-01T00:00:00.000Z"
    last_modified: str = ""
    downloads: int = 0
    likes: int = 0
    files: Mapping[str, bytes] = field(default_factory=dict)
    """Extra files by name (weights too: a stub is enough, the log shows who asked)."""
    raw_config: bytes | None = None
    """Serve these bytes as config.json instead of ``config`` (for malformed JSON)."""

    def __post_init__(self) -> None:
        if not self.sha:
            object.__setattr__(self, "sha", fake_sha(self.repo))
        if not re.fullmatch(r"[0-9a-f]{40}", self.sha):
            raise ValueError(f"{self.repo}: sha must be 40 hex digits, got {self.sha!r}")

    @property
    def author(self) -> str:
        return self.repo.split("/", 1)[0] if "/" in self.repo else ""

    def file_bytes(self) -> dict[str, bytes]:
        """Every file of the repository, config.json first."""
        out: dict[str, bytes] = {}
        if self.raw_config is not None:
            out["config.json"] = self.raw_config
        elif self.config is not None:
            out["config.json"] = json.dumps(self.config, indent=2).encode()
        if self.parameters and not any(n.endswith(".safetensors") for n in self.files):
            out["model.safetensors"] = b"stub weights: the fake Hub never serves real tensors"
        out.update(self.files)
        return out

    def api_info(self) -> dict[str, Any]:
        """Every field ``GET /api/models/{repo}`` can return."""
        summary: dict[str, Any] = {}
        if isinstance(self.config, Mapping):
            for key in ("architectures", "model_type", "quantization_config"):
                if key in self.config:
                    summary[key] = self.config[key]
        tags = list(self.tags)
        if self.license and f"license:{self.license}" not in tags:
            tags.append(f"license:{self.license}")
        info: dict[str, Any] = {
            "_id": self.sha[:24],
            "id": self.repo,
            "modelId": self.repo,
            "author": self.author,
            "sha": self.sha,
            "createdAt": self.created_at,
            "lastModified": self.last_modified or self.created_at,
            "private": self.private,
            "gated": self.gated,
            "disabled": False,
            "downloads": self.downloads,
            "likes": self.likes,
            "library_name": self.library_name,
            "pipeline_tag": self.pipeline_tag,
            "tags": tags,
            "cardData": {"license": self.license} if self.license else {},
            "config": summary,
            "siblings": [{"rfilename": name} for name in self.file_bytes()],
        }
        if self.parameters:
            info["safetensors"] = {
                "parameters": dict(self.parameters),
                "total": sum(self.parameters.values()),
            }
        return info


@dataclass(frozen=True)
class Fault:
    """A failure the fake Hub answers with instead of the real response."""

    status: int = 500
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b'{"error": "Internal Error"}'
    content_type: str = "application/json"
    scope: FaultScope = "any"
    """Which requests fail: model API calls, file downloads (resolve), or any."""
    times: int | None = None
    """How many requests fail before the fault clears itself; None for ever."""

    @classmethod
    def rate_limited(cls, retry_after: int = 30, *, scope: FaultScope = "any") -> Fault:
        """A 429 with ``Retry-After`` and the IETF ``RateLimit`` headers the Hub sends."""
        return cls(
            status=429,
            headers={
                "Retry-After": str(retry_after),
                "RateLimit": f'"api";r=0;t={retry_after}',
                "RateLimit-Policy": '"fixed window";"api";q=500;w=300',
            },
            body=b'{"error": "You have been rate-limited; you can retry this action later."}',
            scope=scope,
        )

    @classmethod
    def server_error(cls, status: int = 503, *, scope: FaultScope = "any") -> Fault:
        return cls(status=status, body=b'{"error": "Service Unavailable"}', scope=scope)

    @classmethod
    def malformed_json(cls, *, scope: FaultScope = "api") -> Fault:
        """A 200 whose body is not JSON (a truncated response, a captive portal)."""
        return cls(status=200, body=b'{"id": "truncated', scope=scope)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake Hub received."""

    method: str
    path: str
    """URL path as sent (percent-encoded: a revision ``refs/pr/1`` reads ``refs%2Fpr%2F1``)."""
    query: Mapping[str, tuple[str, ...]]
    headers: Mapping[str, str]
    """Lower-cased header names."""
    status: int

    @property
    def token(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


@dataclass
class _Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def _json(status: int, data: object, **headers: str) -> _Answer:
    return _Answer(status, json.dumps(data).encode(), dict(headers))


def _error(status: int, code: str | None, message: str) -> _Answer:
    headers = {"X-Error-Message": message}
    if code:
        headers["X-Error-Code"] = code
    return _Answer(status, json.dumps({"error": message}).encode(), headers)


class FakeHub:
    """The fake Hub server: a context manager that serves on ``url`` while open.

    Thread-safe: models and faults may change while a client is talking to it (a watcher test
    adds a model mid-run with :meth:`add`).
    """

    def __init__(
        self,
        models: Iterable[FakeModel] = (),
        *,
        authorized: Iterable[str] = (),
        faults: Mapping[str, Fault] | None = None,
        page_size: int = 1000,
        port: int = 0,
    ) -> None:
        """``authorized``: tokens with access to gated and private repos. ``faults``: by repo
        id, or ``"*"`` for every request (listing included). ``port`` 0 picks a free one."""
        self._lock = threading.Lock()
        self._models: dict[str, FakeModel] = {m.repo: m for m in models}
        self._faults: dict[str, Fault] = dict(faults or {})
        self._log: list[RecordedRequest] = []
        self.authorized = set(authorized)
        self.page_size = page_size
        self.port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config_dir(
        cls,
        directory: str | Path,
        *,
        org: str = "dayzero-fake",
        parameters: Mapping[str, Mapping[str, int]] | None = None,
        **kwargs: Any,
    ) -> FakeHub:
        """A hub of ``models_from_config_dir(directory, org=org, parameters=parameters)``."""
        return cls(models_from_config_dir(directory, org=org, parameters=parameters), **kwargs)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeHub:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_class(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: pass as ``endpoint=`` or ``HF_ENDPOINT``."""
        if self._server is None:
            raise RuntimeError("the fake Hub is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- state -------------------------------------------------------------------------------

    def add(self, model: FakeModel) -> None:
        """Publish (or replace) a repository."""
        with self._lock:
            self._models[model.repo] = model

    def remove(self, repo: str) -> None:
        with self._lock:
            self._models.pop(repo, None)

    def model(self, repo: str) -> FakeModel:
        with self._lock:
            return self._models[repo]

    @property
    def models(self) -> list[FakeModel]:
        with self._lock:
            return list(self._models.values())

    def set_fault(self, repo: str, fault: Fault | None) -> None:
        """Make requests for ``repo`` (``"*"``: every request) fail; None clears it."""
        with self._lock:
            if fault is None:
                self._faults.pop(repo, None)
            else:
                self._faults[repo] = fault

    # -- request log -------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    def requested_files(self, suffix: str = "") -> list[str]:
        """File names asked for through ``/resolve/`` (HEAD or GET), optionally by suffix."""
        out = []
        for r in self.requests:
            match = _RESOLVE.match(r.path)
            if match and unquote(match["file"]).endswith(suffix):
                out.append(unquote(match["file"]))
        return out

    def downloaded_files(self) -> list[str]:
        """File names whose bytes were sent (GET through ``/resolve/``, answered 200)."""
        return [
            unquote(m["file"])
            for r in self.requests
            if r.method == "GET" and r.status == 200 and (m := _RESOLVE.match(r.path))
        ]

    # -- routing (called from the server's threads) ------------------------------------------

    def _answer(  # noqa: PLR0911 - one return per kind of answer, as the Hub routes them
        self, method: str, path: str, query: Mapping[str, list[str]], token: str | None
    ) -> _Answer:
        if path == "/api/models" and method == "GET":
            fault = self._fault("*", "api")
            return fault or self._list(query)
        api = _API_MODEL.match(path)
        resolve = None if api else _RESOLVE.match(path)
        match = api or resolve
        if match is None or (api and method != "GET") or method not in ("GET", "HEAD"):
            return _error(404, None, "Sorry, we can't find the page you are looking for.")
        repo = match["repo"]
        fault = self._fault(repo, "api" if api else "resolve")
        if fault is not None:
            return fault
        with self._lock:
            model = self._models.get(repo)
        if model is None or (model.private and token not in self.authorized):
            return _error(404, "RepoNotFound", "Repository not found")
        rev = unquote(match["rev"] or "main")
        if rev != model.sha and rev not in model.branches:
            return _error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        if api:
            return self._info(model, query)
        return self._file(model, unquote(match["file"]), token)

    def _fault(self, repo: str, scope: FaultScope) -> _Answer | None:
        with self._lock:
            for key in dict.fromkeys((repo, "*")):
                fault = self._faults.get(key)
                if fault is None or fault.scope not in (scope, "any"):
                    continue
                if fault.times is not None:
                    left = fault.times - 1
                    if left <= 0:
                        del self._faults[key]
                    else:
                        self._faults[key] = replace(fault, times=left)
                return _Answer(fault.status, fault.body, dict(fault.headers), fault.content_type)
        return None

    def _info(self, model: FakeModel, query: Mapping[str, list[str]]) -> _Answer:
        info = model.api_info()
        expand = query.get("expand", []) + query.get("expand[]", [])
        keep = ("_id", "id", *expand) if expand else _DEFAULT_FIELDS
        return _json(200, {k: v for k, v in info.items() if k in keep})

    def _file(self, model: FakeModel, name: str, token: str | None) -> _Answer:
        if model.gated and token not in self.authorized:
            if token is None:
                message = (
                    f"Access to model {model.repo} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in."
                )
                return _error(401, "GatedRepo", message)
            message = (
                f"Access to model {model.repo} is restricted and you are not in the "
                f"authorized list. Visit https://huggingface.co/{model.repo} to ask for access."
            )
            return _error(403, "GatedRepo", message)
        content = model.file_bytes().get(name)
        headers = {"X-Repo-Commit": model.sha}
        if content is None:
            return _Answer(
                404,
                json.dumps({"error": "Entry not found"}).encode(),
                headers | {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"},
            )
        oid = hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False)
        headers["ETag"] = f'"{oid.hexdigest()}"'
        kind = "application/json" if name.endswith(".json") else "application/octet-stream"
        return _Answer(200, content, headers, kind)

    def _list(self, query: Mapping[str, list[str]]) -> _Answer:
        def first(key: str, default: str = "") -> str:
            values = query.get(key)
            return values[0] if values else default

        models = self.models
        if author := first("author"):
            models = [m for m in models if m.author == author]
        if search := first("search").lower():
            models = [m for m in models if search in m.repo.lower()]
        if pipeline := first("pipeline_tag"):
            models = [m for m in models if m.pipeline_tag == pipeline]
        for tag in query.get("filter", []):
            models = [m for m in models if tag in m.tags or tag == m.library_name]
        sort = first("sort", "id")
        if sort not in _SORT_KEYS:
            return _error(400, None, f"Invalid sort key: {sort}")
        descending = first("direction", "-1" if sort != "id" else "1") == "-1"
        rows = sorted((m.api_info() for m in models), key=lambda i: i[sort], reverse=descending)
        expand = query.get("expand", []) + query.get("expand[]", [])
        full = first("full").lower() == "true"
        keep = ("_id", "id", *expand) if expand else (_DEFAULT_FIELDS if full else _LIST_FIELDS)
        limit = int(first("limit", "0") or 0)
        size = min(limit, self.page_size) if limit > 0 else self.page_size
        offset = int(first("cursor", "0") or 0)
        page = [{k: v for k, v in row.items() if k in keep} for row in rows[offset : offset + size]]
        headers = {}
        if offset + size < len(rows):
            params = [(k, v) for k, vs in query.items() if k != "cursor" for v in vs]
            params.append(("cursor", str(offset + size)))
            headers["Link"] = f'<{self.url}/api/models?{urlencode(params)}>; rel="next"'
        return _json(200, page, **headers)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._log.append(request)


def models_from_config_dir(
    directory: str | Path,
    *,
    org: str = "dayzero-fake",
    parameters: Mapping[str, Mapping[str, int]] | None = None,
) -> list[FakeModel]:
    """One model per ``NAME.json`` config in ``directory`` (or ``NAME/config.json``), as
    ``org/NAME``; ``parameters`` gives the safetensors counts by NAME where known."""
    directory = Path(directory)
    found = {p.stem: p for p in directory.glob("*.json")}
    found |= {p.parent.name: p for p in directory.glob("*/config.json")}
    models = []
    for name, path in sorted(found.items()):
        config = json.loads(path.read_text())
        models.append(
            FakeModel(
                repo=f"{org}/{name}",
                config=config,
                parameters=dict((parameters or {}).get(name, {})),
            )
        )
    return models


def _handler_class(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dayzero-fake-hub"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_HEAD(self) -> None:
            self._serve("HEAD")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            headers = {k.lower(): v for k, v in self.headers.items()}
            auth = headers.get("authorization", "")
            token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
            try:
                answer = hub._answer(method, url.path, query, token)
            except Exception as e:  # noqa: BLE001 - a bug in the fake must answer, not hang
                answer = _error(500, None, f"fake hub error: {type(e).__name__}: {e}")
            hub._record(
                RecordedRequest(
                    method=method,
                    path=url.path,
                    query={k: tuple(v) for k, v in query.items()},
                    headers=headers,
                    status=answer.status,
                )
            )
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            # One request per connection: no idle keep-alive threads outlive the server.
            self.send_header("Connection", "close")
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(answer.body)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log replaces stderr lines

    return Handler
