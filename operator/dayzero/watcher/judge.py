"""Is a new release deployable here? A pure decision over what the sources gathered.

Order matters and is the order a person would check: is it wanted at all (filters), can we read
it (gated), can vLLM serve it (unsupported), does it fit the GPUs we have (too_large). The
planner's plan rides along with every verdict it could be computed for, so an alert can say what
the model would cost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from dayzero.api.v1alpha1 import Plan
from dayzero.planner import PlanError, plan
from dayzero.planner.support import model_support, removed_in, vllm_version

from .config import Budget, Filters
from .release import GitHubRelease, HubRelease

VerdictKind = Literal["deployable", "gated", "unsupported", "too_large", "filtered"]
HELD: frozenset[VerdictKind] = frozenset({"unsupported"})
"""Verdicts a new vLLM release re-judges."""
TEXT_PIPELINES = frozenset({"text-generation", "image-text-to-text"})
"""Pipeline tags of models that generate text (multimodal ones from text and media)."""
_SERVED = frozenset({"text_generation", "multimodal", "transformers_backend"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judgement of one release, and why."""

    kind: VerdictKind
    reason: str
    plan: Plan | None = None

    @property
    def deployable(self) -> bool:
        return self.kind == "deployable"


def prefilter(release: HubRelease, filters: Filters) -> Verdict | None:
    """The filtered verdict from the listing alone (name, license, listed size), or None."""
    name = release.name
    if filters.include and not any(re.search(p, name) for p in filters.include):
        return Verdict("filtered", f"name {name!r} matches no filters.include pattern")
    for pattern in filters.exclude:
        if re.search(pattern, name):
            return Verdict("filtered", f"name {name!r} matches filters.exclude {pattern!r}")
    allowed = {lic.lower() for lic in filters.licenses}
    if allowed and (release.license or "").lower() not in allowed:
        return Verdict("filtered", f"license {release.license!r} is not in filters.licenses")
    return _size_filter(release.parameter_count, filters)


def _size_filter(count: int | None, filters: Filters, plan_: Plan | None = None) -> Verdict | None:
    if count is None:
        return None
    billions = count / 1e9
    if billions < filters.min_params_b:
        why = f"{billions:.2f}B parameters, below filters.minParamsB {filters.min_params_b:g}"
        return Verdict("filtered", why, plan_)
    if filters.max_params_b is not None and billions > filters.max_params_b:
        why = f"{billions:.2f}B parameters, above filters.maxParamsB {filters.max_params_b:g}"
        return Verdict("filtered", why, plan_)
    return None


def judge(  # noqa: PLR0911 - one return per verdict, in the order a person checks them
    release: HubRelease,
    filters: Filters,
    budget: Budget,
    *,
    announced: Mapping[str, str] | None = None,
    transformers_fallback: bool = False,
) -> Verdict:
    """Classify ``release``.

    ``announced``: architectures named by vLLM releases newer than the pinned one (architecture
    -> release tag), from the GitHub source; they count as supported, and the reason says which
    release brings them. ``transformers_fallback``: an architecture vLLM does not know is still
    deployable for a transformers repo (the operator's fallback ladder serves it).
    """
    if (early := prefilter(release, filters)) is not None:
        return early
    if release.access_denied:
        return Verdict(
            "gated", f"gated ({release.gated or 'access'}): our Hub token cannot read it"
        )
    if release.invalid:
        return Verdict("unsupported", release.invalid)
    if release.pipeline_tag is not None and release.pipeline_tag not in TEXT_PIPELINES:
        return Verdict("unsupported", f"pipeline {release.pipeline_tag!r} is not text generation")
    if not release.parameters and not any(f.endswith(".safetensors") for f in release.files):
        return Verdict("unsupported", "no safetensors weights")
    facts = release.facts
    if facts is None:
        return Verdict("unsupported", "config.json was not read")
    support = _support(facts.architectures, announced or {}, release, transformers_fallback)
    if support.startswith("unsupported:"):
        return Verdict("unsupported", support.removeprefix("unsupported:").strip())
    try:
        the_plan = plan(facts, budget.gpu_kind)
    except PlanError as e:
        return Verdict("unsupported", f"the planner cannot size it: {e}")
    if (late := _size_filter(the_plan.parameter_count, filters, the_plan)) is not None:
        return late
    if not the_plan.fits:
        why = next((r.reason for r in the_plan.reasons if r.field == "fits"), "does not fit")
        return Verdict("too_large", f"does not fit {budget.gpu_kind} nodes: {why}", the_plan)
    if the_plan.gpus > budget.max_gpus:
        why = f"needs {the_plan.gpus} {budget.gpu_kind} GPUs, budget.maxGpus is {budget.max_gpus}"
        return Verdict("too_large", why, the_plan)
    layout = f"{the_plan.gpus} x {budget.gpu_kind} (TP{the_plan.tensor_parallel} x PP"
    layout += f"{the_plan.pipeline_parallel}), maxModelLen {the_plan.max_model_len}"
    return Verdict("deployable", f"{support}; {layout}", the_plan)


def _support(
    architectures: tuple[str, ...],
    announced: Mapping[str, str],
    release: HubRelease,
    transformers_fallback: bool,
) -> str:
    """A supported-by phrase, or ``unsupported: why``."""
    pinned = vllm_version()
    support = model_support(architectures)
    arch = ", ".join(architectures) or "(none)"
    if support in _SERVED:
        return f"{arch} is served by the pinned vLLM {pinned}"
    if support == "other":
        return f"unsupported: {arch} is a pooling/classification model in vLLM, not generation"
    for a in architectures:
        if a in announced:
            return f"{a} is announced by vLLM {announced[a]} (pinned: {pinned}; bump the image)"
    if support == "previously_supported":
        last = next((removed_in(a) for a in architectures if removed_in(a)), "?")
        return f"unsupported: {arch} was removed from vLLM after {last}"
    if transformers_fallback and release.library_name == "transformers":
        return f"{arch} is unknown to vLLM {pinned}; served by the Transformers fallback"
    return f"unsupported: architecture {arch} is not in vLLM {pinned}'s registry"


# -- what a vLLM release announces ---------------------------------------------------------------

_ARCHITECTURE = re.compile(r"\b[A-Z][A-Za-z0-9]*For(?:CausalLM|ConditionalGeneration)\b")


def version_key(tag: str) -> tuple[int, ...]:
    """``v0.34.1`` -> (0, 34, 1); the numbers of a tag, for ordering releases."""
    return tuple(int(n) for n in re.findall(r"\d+", tag)[:3])


def announced_architectures(
    releases: Iterable[GitHubRelease], pinned: str | None = None
) -> dict[str, str]:
    """Architectures (``XxxForCausalLM``, ``XxxForConditionalGeneration``) named in the notes of
    final vLLM releases newer than the pinned one -> the earliest such release's tag.

    vLLM's release notes list new model classes; this reads them, nothing more. A model judged
    deployable this way says which release it needs: the pinned image still has to be bumped
    (until then the operator's fallback ladder is what serves it).
    """
    floor = version_key(pinned or vllm_version())
    found: dict[str, str] = {}
    newer = [r for r in releases if not r.prerelease and version_key(r.tag) > floor]
    for release in sorted(newer, key=lambda r: version_key(r.tag)):
        for arch in _ARCHITECTURE.findall(f"{release.name}\n{release.body}"):
            found.setdefault(arch, release.tag)
    return found
