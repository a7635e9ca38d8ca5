"""Fixtures of the serving tests: two versions of the fake export, built once."""

import pytest

from tests.serving.fake_export import build_fake_export


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> str:
    """A directory holding versions 1 and 2 (different weights) of the fake export."""
    library = str(tmp_path_factory.mktemp("exports"))
    build_fake_export(library, 1, seed=1)
    build_fake_export(library, 2, seed=2)
    return library
