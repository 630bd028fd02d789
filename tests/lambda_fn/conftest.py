"""The serving tests' events (the image files, the image server and the local server are tests/conftest.py's:
the catalog tools' tests use them too), and the photos in the real S3 (radosgw: tests/conftest.py's s3_server).

Nothing here imports TensorFlow: these tests also run in the Lambda's
TensorFlow-free environment.
"""

import contextlib
import functools
import json
from collections.abc import Iterator

import pytest

from harness import REPO, s3
from harness.needs import missing

# the users' sample events (they run as they are) and the tests' templates (the image server's URL filled in)
EVENT_FOLDERS = (REPO / "infra" / "events", REPO / "tests" / "events")


@pytest.fixture
def load_event(image_server):
    def load(name: str) -> dict:
        (path,) = [folder / name for folder in EVENT_FOLDERS if (folder / name).is_file()]
        return json.loads(path.read_text().replace("{image_server}", image_server))

    return load


@pytest.fixture(scope="session")
def catalog(s3_server, image_files, app) -> Iterator[dict[str, dict]]:
    """The test deployment's bucket (CATALOG_BUCKET) in the real S3, versioned, holding photos under keys that
    need encoding, bad photos, and one tagged already; another bucket with a photo the function must not read.
    The function's boto3 is pointed at it the way it would be at AWS: environment variables.
    Yields each object's name -> its Bucket, Key, VersionId."""
    client = s3_server.client()
    other = "another-shop"
    for bucket in (s3.TEST_BUCKET, other):
        client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=s3.TEST_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    photos = {
        "hat": ("shop/red hat+1 ñ.jpg", image_files["hat.jpg"].read_bytes()),
        "pants": ("shop/pants.jpg", image_files["pants.jpg"].read_bytes()),
        "webp": ("new/a photo.webp", image_files["photo.webp"].read_bytes()),
        "text": ("shop/notes.jpg", image_files["text.jpg"].read_bytes()),
        "bomb": ("shop/bomb.png", image_files["bomb.png"].read_bytes()),
        "truncated": ("shop/truncated.jpg", image_files["truncated.jpg"].read_bytes()),
        "too-big": ("shop/huge.jpg", b"\xff" * (app.SETTINGS.fetch.max_bytes + 1)),
    }
    objects = {}
    for name, (key, data) in photos.items():
        tagging = "shop=north&season=summer" if name == "pants" else ""
        put = client.put_object(Bucket=s3.TEST_BUCKET, Key=key, Body=data, Tagging=tagging)
        objects[name] = {"Bucket": s3.TEST_BUCKET, "Key": key, "VersionId": put["VersionId"]}
    client.put_object(Bucket=other, Key="shop/pants.jpg", Body=photos["pants"][1])
    objects["elsewhere"] = {"Bucket": other, "Key": "shop/pants.jpg", "VersionId": None}
    objects["missing"] = {"Bucket": s3.TEST_BUCKET, "Key": "shop/gone.jpg", "VersionId": None}
    with s3_endpoint(s3_server.environment()):
        yield objects


@contextlib.contextmanager
def s3_endpoint(environment: dict[str, str]) -> Iterator[None]:
    """boto3 in the function pointed at another endpoint for as long as this lasts: its client is made again."""
    from lambda_fn import objects

    with pytest.MonkeyPatch.context() as env:
        for name, value in environment.items():
            env.setenv(name, value)
        objects.client.cache_clear()
        try:
            yield
        finally:
            objects.client.cache_clear()


@pytest.fixture
def s3_at(catalog, s3_server):
    """Point the function's S3 at another endpoint (a stopped or misbehaving S3) for this test."""
    with contextlib.ExitStack() as stack:
        yield lambda endpoint: stack.enter_context(
            s3_endpoint({**s3_server.environment(), "AWS_ENDPOINT_URL_S3": endpoint})
        )


@pytest.fixture(scope="session")
def sam_event():
    """An event as SAM CLI generates it (sam local generate-event SERVICE EVENT OPTIONS...)."""
    from harness.sam import SAM, sam, sam_offline

    if not SAM.exists():
        missing("the SAM CLI's venv .venv-sam is not built (make test builds it)")

    @functools.cache
    def generated(*args: str) -> str:
        with sam_offline() as env:
            result = sam(env, REPO, "local", "generate-event", *args, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    return lambda *args: json.loads(generated(*args))  # each call its own copy, to change as it likes


@pytest.fixture(scope="session")
def batch_event(sam_event):
    """batch_event(object, schema): SAM CLI's Batch Operations event (schema 1.0) for this object (its Bucket,
    Key, VersionId); 2.0 as AWS documents it (the bucket by name, the job's userArguments). SAM's sample names
    version "1": the object's own is put in its place."""

    def make(obj: dict, schema: str = "1.0") -> dict:
        event = sam_event(
            "s3", "batch-invocation", "--bucket-arn", f"arn:aws:s3:::{obj['Bucket']}", "--key", obj["Key"]
        )
        (task,) = event["tasks"]
        task["s3VersionId"] = obj["VersionId"]
        if schema == "2.0":
            event["invocationSchemaVersion"] = "2.0"
            event["job"]["userArguments"] = {"purpose": "catalog"}
            task["s3Bucket"] = task.pop("s3BucketArn").split(":::")[1]
        return event

    return make
