"""Session fixtures shared by several test folders."""

from __future__ import annotations

import pytest
from encoder_bundle import EncoderBundles, build, missing


@pytest.fixture(scope="session")
def encoder_bundles(tmp_path_factory: pytest.TempPathFactory) -> EncoderBundles:
    """The demo bundle with its real encoders (and the same translators without them); skips without
    the encoders extra or the Debian stamps. About a minute: training plus three verified exports."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    return build(tmp_path_factory.mktemp("encoders"))
