"""Where a composite venue's second and third feeds live: next to its own under the same root
(``{root}/aave`` -> ``{root}/lido``), or at the URL its params name (the live hosts differ)."""

from __future__ import annotations


def sibling_url(
    venue_id: str,
    base_url: str,
    own_prefix: str,
    other_prefix: str,
    override: str | None,
    param: str,
) -> str:
    """``override`` if given, else ``base_url`` with its trailing ``/own_prefix`` replaced by
    ``/other_prefix``; ValueError naming ``feed.params.<param>`` when neither works."""
    if override:
        return override.rstrip("/")
    base = base_url.rstrip("/")
    suffix = "/" + own_prefix
    if base.endswith(suffix):
        return base[: -len(suffix)] + "/" + other_prefix
    raise ValueError(
        f"venue {venue_id}: feed.params.{param}: required when feed.base_url ({base_url}) does not end in {suffix}"
    )
