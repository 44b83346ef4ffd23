import pytest

from tests.support.engine_fixtures import calls, make_runtime


@pytest.fixture
def runtime(tmp_path):
    calls().clear()
    return make_runtime(tmp_path)
