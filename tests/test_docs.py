"""The README's config reference is generated from the settings models; it must match them."""

import re

from tests.daemon_process import REPO
from vault.settings import config_reference_markdown


def test_readme_config_reference_matches_the_settings_models():
    readme = (REPO / "README.md").read_text()
    match = re.search(
        r"<!-- config-reference:start[^\n]*-->\n(.*?)\n<!-- config-reference:end -->", readme, re.S
    )
    assert match, "README.md lost its config-reference markers"
    assert match.group(1) == config_reference_markdown(), (
        "README config reference is stale: run python -m vault.settings"
    )


def test_every_top_level_section_of_the_default_config_is_documented():
    import yaml

    from vault.settings import DEFAULT_CONFIG

    readme = (REPO / "README.md").read_text()
    for section in yaml.safe_load(DEFAULT_CONFIG.read_text()):
        assert f"`{section}" in readme, section
