"""The Lambda's configuration: environment variables, each declared in infra/template.yaml.

Read once at import. A value that does not parse stops the function at
start-up with a message naming the variable, rather than serving with a
limit nobody chose.
"""

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lambda_fn.fetch import FetchLimits
from lambda_fn.logs import LEVELS

# The image's layout: the bundle beside this package (Dockerfile.lambda copies it to ${LAMBDA_TASK_ROOT}/model).
# In the repository it is elsewhere (project/paths.py): make serve and the tests set MODEL_DIR.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "model"
BATCH_WORKERS = 8  # URLs of a urls request fetched at once
DECODERS = 2  # images decoded at once: bounds a request's peak memory to this many decoded images
# Seconds to decode and infer the costliest image the limits admit (bench/hostile.py measures it; 2 cores).
IMAGE_SECONDS = 1.0
ANSWER_SECONDS = 1.0  # kept at the end of the function's time to answer: a urls batch stops this early
# An image's memory once decoded, as RGB(A) (MAX_DECODED_BYTES); the training stage reads its files with it too
DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    model_dir: Path
    threads: int  # interpreter threads; Lambda gives 1 vCPU per 1,769 MB of memory
    max_urls: int  # most URLs in one {"urls": [...]} request
    max_decoded_bytes: int  # an image's memory once decoded (as RGB(A)): stops decompression bombs
    fetch: FetchLimits
    cors_origin: str
    log_level: int  # the function's own records; in AWS, LoggingConfig's ApplicationLogLevel filters them too
    function_timeout: int  # seconds; the template passes the function's Timeout
    min_confidence: float | None  # the calibrated probability an answer must reach; None: the model's own
    model_variant: str | None  # the variant the stack declares (its ModelVariant); the bundle must be it
    catalog_bucket: str  # the one S3 bucket whose photos are read (S3 events, Batch Operations); "": none


def integer(env, name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or int(raw) < minimum:
        raise ValueError(f"environment variable {name}={raw!r} must be a whole number >= {minimum}")
    return int(raw)


def seconds(env, name: str, default: float) -> float:
    raw = env.get(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 900:
        raise ValueError(f"environment variable {name}={raw!r} must be seconds between 0 and 900")
    return value


def boolean(env, name: str, default: bool) -> bool:
    raw = env.get(name, str(default).lower())
    if raw not in ("true", "false"):
        raise ValueError(f"environment variable {name}={raw!r} must be 'true' or 'false'")
    return raw == "true"


def fraction_or_model(env, name: str) -> float | None:
    raw = env.get(name, "")
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:  # NaN fails too
        raise ValueError(
            f"environment variable {name}={raw!r} must be a probability between 0 and 1, or empty for the "
            "threshold the model was calibrated with (model.json)"
        )
    return value


# S3's rules for a bucket's name: 3 to 63 lowercase letters, digits, dots and hyphens, a letter or digit at each end
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def bucket_or_none(env, name: str) -> str:
    raw = env.get(name, "")
    if raw and not BUCKET_NAME.fullmatch(raw):
        raise ValueError(
            f"environment variable {name}={raw!r} must be an S3 bucket's name (3 to 63 lowercase letters, digits, "
            "dots and hyphens), or empty for none"
        )
    return raw


def level(env, name: str, default: str) -> int:
    raw = env.get(name, default)
    if raw.upper() not in LEVELS:
        raise ValueError(f"environment variable {name}={raw!r} must be one of {', '.join(LEVELS)}")
    return LEVELS[raw.upper()]


def load(env=os.environ) -> Settings:
    """The settings, refusing a FETCH_TIMEOUT that even one image's request could not fit in the function's time
    (the template's parameter limits admit no such combination: tests/infra checks the whole space)."""
    loaded = read(env)
    one = loaded.fetch.total_timeout + IMAGE_SECONDS + ANSWER_SECONDS
    if one > loaded.function_timeout:
        raise ValueError(
            f"FETCH_TIMEOUT={loaded.fetch.total_timeout:g} s, {IMAGE_SECONDS:g} s to decode and infer and "
            f"{ANSWER_SECONDS:g} s to answer exceed FUNCTION_TIMEOUT={loaded.function_timeout} s: "
            "a request for one URL could run out of time"
        )
    return loaded


def full_batch_seconds(loaded: Settings) -> float:
    """The most a full urls batch can take: its waves of fetches, its images decoded a few at a time, the answer.
    Over the function's time, its last entries may answer out_of_time (the function warns at start)."""
    waves = math.ceil(loaded.max_urls / BATCH_WORKERS)
    decoding = math.ceil(loaded.max_urls / DECODERS) * IMAGE_SECONDS
    return waves * loaded.fetch.total_timeout + decoding + ANSWER_SECONDS


def read(env) -> Settings:
    return Settings(
        model_dir=Path(env.get("MODEL_DIR", DEFAULT_MODEL_DIR)),
        threads=integer(env, "MODEL_THREADS", os.cpu_count() or 1),
        max_urls=integer(env, "MAX_URLS", 10),
        max_decoded_bytes=integer(env, "MAX_DECODED_BYTES", DEFAULT_MAX_DECODED_BYTES),
        fetch=FetchLimits(
            max_bytes=integer(env, "MAX_IMAGE_BYTES", FetchLimits.max_bytes),  # each default: FetchLimits'
            connect_timeout=seconds(env, "FETCH_CONNECT_TIMEOUT", FetchLimits.connect_timeout),
            total_timeout=seconds(env, "FETCH_TIMEOUT", FetchLimits.total_timeout),
            max_redirects=integer(env, "MAX_REDIRECTS", FetchLimits.max_redirects, minimum=0),
            allow_private=boolean(env, "ALLOW_PRIVATE_URLS", FetchLimits.allow_private),
        ),
        cors_origin=env.get("CORS_ALLOW_ORIGIN", "*"),
        log_level=level(env, "LOG_LEVEL", "INFO"),
        function_timeout=integer(env, "FUNCTION_TIMEOUT", 900),  # Lambda's most; the template passes its own
        min_confidence=fraction_or_model(env, "MIN_CONFIDENCE"),
        model_variant=env.get("MODEL_VARIANT") or None,  # unset outside the stack: any bundle serves
        catalog_bucket=bucket_or_none(env, "CATALOG_BUCKET"),
    )
