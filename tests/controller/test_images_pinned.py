"""The engine image the operator renders is the vLLM release the architecture data comes from."""

from dayzero.controller.operator import DEFAULT_IMAGES
from dayzero.planner.support import vllm_version


def test_vllm_image_tag_matches_the_architecture_data():
    assert DEFAULT_IMAGES.vllm.rsplit(":", 1)[-1] == f"v{vllm_version()}"
