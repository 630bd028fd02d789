"""The serving tests' events (the image files, the image server and the local server are tests/conftest.py's:
the catalog tools' tests use them too).

Nothing here imports TensorFlow: these tests also run in the Lambda's
TensorFlow-free environment.
"""

import json

import pytest

from harness import REPO

# the users' sample events (they run as they are) and the tests' templates (the image server's URL filled in)
EVENT_FOLDERS = (REPO / "infra" / "events", REPO / "tests" / "events")


@pytest.fixture
def load_event(image_server):
    def load(name: str) -> dict:
        (path,) = [folder / name for folder in EVENT_FOLDERS if (folder / name).is_file()]
        return json.loads(path.read_text().replace("{image_server}", image_server))

    return load
