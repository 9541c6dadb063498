"""The routing document's validation and the pure lane choice."""

from pathlib import Path

import pytest
import yaml

from dayzero.api.routing import Routing
from dayzero.gateway.config import ConfigError, load_file, parse
from dayzero.gateway.errors import GatewayError
from dayzero.gateway.routing import choose

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway" / "routing.yaml"


def doc(**extra):
    base = {
        "apiVersion": "dayzero.dev/routing-v1",
        "kind": "Routing",
        "lanes": [
            {"name": "chat", "model": "chat", "aliases": ["default"], "backends": ["a", "b"]},
            {"name": "fast", "model": "gemma3:4b", "tag": "light", "backends": ["b"]},
        ],
        "backends": [
            {"name": "a", "url": "http://127.0.0.1:1"},
            {"name": "b", "url": "http://127.0.0.1:2"},
        ],
        "tags": {"preview": {"lane": "chat", "backend": "b"}},
    }
    base.update(extra)
    return Routing.model_validate(base)


def test_example_validates():
    routing = Routing.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert [lane.name for lane in routing.lanes] == ["chat", "alert-fast"]
    assert routing.backends[2].api_key_ref is not None


@pytest.mark.parametrize(
    ("model", "header", "lane", "backends", "via"),
    [
        ("chat", None, "chat", ("a", "b"), "model"),
        ("default", None, "chat", ("a", "b"), "alias"),
        ("light", None, "fast", ("b",), "tag"),
        ("preview", None, "chat", ("b",), "tag"),
        ("anything", "fast", "fast", ("b",), "header"),
        ("chat", "fast", "fast", ("b",), "header"),
    ],
)
def test_choose(model, header, lane, backends, via):
    route = choose(doc(), model, header)
    assert (route.lane.name, route.backends, route.via) == (lane, backends, via)


def test_unknown_model_lists_what_exists():
    with pytest.raises(GatewayError) as e:
        choose(doc(), "gpt-5", None)
    assert e.value.status == 404
    assert e.value.param == "model"
    for name in ("chat", "default", "gemma3:4b", "light", "preview"):
        assert name in e.value.message


def test_unknown_lane_header_lists_lanes():
    with pytest.raises(GatewayError) as e:
        choose(doc(), "chat", "nope")
    assert e.value.status == 404
    assert "chat, fast" in e.value.message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lanes": [{"name": "x", "model": "x", "backends": ["zz"]}]}, "lanes[0].backends[0]"),
        ({"tags": {"t": {"lane": "nope"}}}, "tags.t.lane"),
        ({"tags": {"t": {"lane": "fast", "backend": "zz"}}}, "tags.t.backend"),
        ({"tags": {"default": {"lane": "fast"}}}, "tags.default"),
        ({"backends": [{"name": "a", "url": "ftp://x"}, {"name": "b", "url": "http://y"}]}, "url"),
        (
            {
                "backends": [
                    {"name": "a", "url": "http://x", "apiKeyRef": {"secret": "s", "env": "E"}},
                    {"name": "b", "url": "http://y"},
                ]
            },
            "apiKeyRef",
        ),
        ({"lanes": [{"name": "x", "backends": ["a"]}]}, "lanes[0]"),
        ({"shared_concurrency": 0}, "sharedConcurrency"),
    ],
)
def test_invalid_documents_name_the_field(change, field):
    text = yaml.safe_dump({**doc().to_wire(), **change})
    with pytest.raises(ConfigError) as e:
        parse(text.replace("shared_concurrency", "sharedConcurrency"))
    assert field in str(e.value)


def test_unknown_field_is_rejected():
    with pytest.raises(ConfigError, match=r"lanes\.0\.modle"):
        parse(yaml.safe_dump({**doc().to_wire(), "lanes": [{"name": "x", "modle": "x"}]}))


def test_wrong_api_version_is_rejected():
    with pytest.raises(ConfigError, match="apiVersion"):
        parse(yaml.safe_dump({**doc().to_wire(), "apiVersion": "dayzero.dev/v1alpha1"}))


def test_backend_key_by_env_and_secret(tmp_path, monkeypatch):
    secrets = tmp_path / "secrets" / "vllm"
    secrets.mkdir(parents=True)
    (secrets / "token").write_text("s3cret\n")
    monkeypatch.setenv("DZ_TEST_KEY", "from-env")
    wire = doc().to_wire()
    wire["secretsDir"] = str(tmp_path / "secrets")
    wire["backends"][0]["apiKeyRef"] = {"secret": "vllm"}
    wire["backends"][1]["apiKeyRef"] = {"env": "DZ_TEST_KEY"}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(wire))
    snapshot = load_file(path)
    assert snapshot.backend_tokens == {"a": "s3cret", "b": "from-env"}
    monkeypatch.delenv("DZ_TEST_KEY")
    # A key that cannot be read makes that backend unusable (skipped, named), not the document.
    snapshot = load_file(path)
    assert snapshot.backend_tokens["a"] == "s3cret"
    assert "backends[1].apiKeyRef.env" in snapshot.unusable["b"]
    assert "a" not in snapshot.unusable


def test_keys_file_is_read(tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(yaml.safe_dump([{"sha256": "a" * 64, "project": "p", "lanes": ["chat"]}]))
    wire = doc().to_wire()
    wire["keys"] = {"file": str(keys)}
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(wire))
    assert load_file(path).keys.enabled
    keys.write_text("- {sha256: nothex, project: p}")
    with pytest.raises(ConfigError, match=r"keys\.file"):
        load_file(path)


def test_a_canary_goes_first_for_its_projects_and_a_sticky_share():
    routing = doc()
    lanes = [lane.model_dump(by_alias=True) for lane in routing.lanes]
    lanes[0]["canary"] = {"backend": "b", "projects": ["team-a"], "percent": 0}
    routing = doc(lanes=lanes)
    assert choose(routing, "chat", None, "team-a").backends == ("b", "a")
    assert choose(routing, "chat", None, "team-z").backends == ("a", "b")
    assert choose(routing, "chat", "chat", "team-a").backends == ("b", "a")
    lanes[0]["canary"] = {"backend": "b", "percent": 50}
    routing = doc(lanes=lanes)
    firsts = [choose(routing, "chat", None, f"p{i}").backends[0] for i in range(200)]
    assert 60 < firsts.count("b") < 140  # about half of the projects
    # Sticky: a project always lands on the same side.
    assert [choose(routing, "chat", None, f"p{i}").backends[0] for i in range(200)] == firsts


def test_url_map_rewrites_backend_prefixes_but_not_the_hash(tmp_path):
    from dayzero.gateway.config import load_text  # noqa: PLC0415

    text = yaml.safe_dump(doc().to_wire())
    plain = load_text(text)
    mapped = load_text(text, {"http://127.0.0.1:1": "http://127.0.0.1:9"})
    assert mapped.hash == plain.hash
    assert mapped.backend("a").url == "http://127.0.0.1:9"
    assert mapped.backend("b").url == "http://127.0.0.1:2"


def test_loopback_only_sends_every_other_backend_nowhere():
    from dayzero.gateway.config import NOWHERE, load_text  # noqa: PLC0415

    backends = [
        {"name": "a", "url": "http://ollama-111.example:11434"},
        {"name": "b", "url": "http://localhost:2"},
        {"name": "c", "url": "https://10.0.0.7/v1"},
    ]
    text = yaml.safe_dump(doc(backends=backends).to_wire())
    snap = load_text(text, {"https://10.0.0.7": "http://127.0.0.5:8"}, loopback_only=True)
    assert snap.backend("a").url == NOWHERE
    assert snap.backend("b").url == "http://localhost:2"
    assert snap.backend("c").url == "http://127.0.0.5:8/v1"
