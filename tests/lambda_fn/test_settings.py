import importlib.util
import os

import pytest

from lambda_fn import settings
from lambda_fn.model import RUNTIME


def test_defaults_are_safe():
    s = settings.load({})
    assert s.fetch.allow_private is False and s.max_urls == 10 and s.fetch.max_bytes == 10 * 1024 * 1024
    assert s.threads >= 1 and s.fetch.max_redirects == 3
    assert s.catalog_bucket == ""  # no bucket is read unless the deployment names one


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("MAX_URLS", "ten", "MAX_URLS='ten' must be a whole number >= 1"),
        ("MAX_IMAGE_BYTES", "0", "MAX_IMAGE_BYTES='0' must be a whole number >= 1"),
        ("FETCH_TIMEOUT", "forever", "FETCH_TIMEOUT='forever' must be seconds between 0 and 900"),
        ("ALLOW_PRIVATE_URLS", "yes", "ALLOW_PRIVATE_URLS='yes' must be 'true' or 'false'"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' must be one of TRACE, DEBUG, INFO, WARN"),
        ("MIN_CONFIDENCE", "high", "MIN_CONFIDENCE='high' must be a probability between 0 and 1, or empty"),
        ("MIN_CONFIDENCE", "1.5", "MIN_CONFIDENCE='1.5' must be a probability between 0 and 1"),
        ("MIN_CONFIDENCE", "-0.1", "MIN_CONFIDENCE='-0.1' must be a probability"),
        ("MIN_CONFIDENCE", "nan", "MIN_CONFIDENCE='nan' must be a probability"),
        ("MIN_CONFIDENCE", "inf", "MIN_CONFIDENCE='inf' must be a probability"),
        ("CATALOG_BUCKET", "Shop_Photos", "CATALOG_BUCKET='Shop_Photos' must be an S3 bucket's name"),
        ("CATALOG_BUCKET", "s3://shop", "CATALOG_BUCKET='s3://shop' must be an S3 bucket's name"),
    ],
)
def test_bad_values_name_the_variable(name, value, words):
    with pytest.raises(ValueError, match=words):
        settings.load({name: value})


@pytest.mark.parametrize("raw, value", [("", None), ("0", 0.0), ("0.9", 0.9), ("1", 1.0)])
def test_min_confidence_is_the_models_own_unless_set(raw, value):
    assert settings.load({"MIN_CONFIDENCE": raw}).min_confidence == value
    assert settings.load({}).min_confidence is None


def test_a_fetch_timeout_that_one_image_cannot_fit_is_refused():
    settings.load({"FUNCTION_TIMEOUT": "12", "FETCH_TIMEOUT": "10"})  # 10 + 1 to decode + 1 to answer
    with pytest.raises(ValueError, match="FETCH_TIMEOUT=10.5 s, 1 s to decode and infer .* exceed FUNCTION_TIMEOUT=12"):
        settings.load({"FUNCTION_TIMEOUT": "12", "FETCH_TIMEOUT": "10.5"})


def test_a_full_batch_over_the_function_timeout_is_counted():
    """The review's case, Timeout 30, MaxUrls 10, FetchTimeout 13: it starts; a full batch may run out of time."""
    loaded = settings.load({"FUNCTION_TIMEOUT": "30", "FETCH_TIMEOUT": "13", "MAX_URLS": "10"})
    assert settings.full_batch_seconds(loaded) == 2 * 13 + 5 + 1


@pytest.mark.skipif(
    os.environ.get("FASHION_TF_FREE") != "1",
    reason="checks the Lambda's TensorFlow-free environment (make test runs it there)",
)
def test_the_serving_environment_has_no_tensorflow_or_keras(app):
    """LiteRT as in the image, or the course's tflite-runtime (FASHION_RUNTIME, make test's third pass)."""
    runtime = os.environ.get("FASHION_RUNTIME", "ai-edge-litert")
    other = {"ai-edge-litert": "tflite_runtime", "tflite-runtime": "ai_edge_litert"}[runtime]
    for name in ("tensorflow", "keras", other):
        assert importlib.util.find_spec(name) is None, f"{name} is installed in the serving environment"
    assert RUNTIME == runtime
    assert type(app.MODEL.interpreter).__module__.startswith(runtime.replace("-", "_"))
