"""`dayzero operator` flags that are checked before anything starts."""

import pytest

from dayzero.cli import _provider_urls


def test_provider_url_overrides_parse():
    assert _provider_urls(["anthropic=http://127.0.0.1:9000"]) == [
        ("anthropic", "http://127.0.0.1:9000")
    ]


@pytest.mark.parametrize("bad", ["anthropic", "bedrock=http://x", "openai=ftp://x"])
def test_bad_provider_url_names_the_flag(bad):
    with pytest.raises(SystemExit, match="--provider-url"):
        _provider_urls([bad])
