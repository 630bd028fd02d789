"""The Lambda function: image URL or bytes in, clothing category out.

    handler: lambda_fn.app.lambda_handler

The interpreter, its tensor indices and the labels load once, at import
(the cold start); every invocation after that only fetches, preprocesses
and invokes. The handler is a thin adapter: parse the event, call predict,
format the response. Errors are returned, never raised, for direct
invocations too, in the same {"error": {"status", "code", "message"}}
shape as over HTTP: a bad photo is the caller's problem, not a function
error that would trigger Lambda's retries of asynchronous invocations.
"""

import ctypes
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

from lambda_fn import events, logs, metrics, objects, settings
from lambda_fn.answers import ModelId, Prediction
from lambda_fn.confidence import answer, calibrated
from lambda_fn.errors import RequestError, error_body
from lambda_fn.events import Kind
from lambda_fn.fetch import FetchLimits, fetch
from lambda_fn.model import Model
from lambda_fn.objects import ObjectRef


def return_freed_images_to_the_os() -> None:
    """glibc keeps freed blocks in per-thread arenas and raises its mmap threshold as large blocks are
    freed, so the resident set would keep each batch worker's largest image. Fix the threshold at 1 MB:
    image buffers (Pillow allocates 16 MB blocks) are mapped, and unmapped when freed."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc (macOS, musl): nothing to tune
    libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    libc.mallopt(-8, 2)  # M_ARENA_MAX: two arenas however many threads


return_freed_images_to_the_os()
# Warnings (Pillow's about a photo's odd EXIF, say) become log records, so they reach the log stream as
# JSON lines like every other record, not as raw text.
logging.captureWarnings(True)
SETTINGS = settings.load()
log = logging.getLogger("fashion")
metrics_log = logs.apply_level(SETTINGS.log_level)  # the metrics' records pass whatever the level (logs.py)
if (full_batch := settings.full_batch_seconds(SETTINGS)) > SETTINGS.function_timeout:
    log.warning(
        "a full urls batch can take %g s, over FUNCTION_TIMEOUT=%d s: its last entries may answer out_of_time",
        full_batch,
        SETTINGS.function_timeout,
    )
MODEL = Model(SETTINGS.model_dir, SETTINGS.threads)
MIN_CONFIDENCE = MODEL.min_confidence if SETTINGS.min_confidence is None else SETTINGS.min_confidence
SERIES = metrics.Series.of(os.environ, MODEL.meta, SETTINGS.model_variant)  # the metrics' dimension values
NOT_SURE_SHARE = metrics.expected_not_sure_share(MODEL.meta, SETTINGS.min_confidence is None)
# Every prediction names the model that made it and the bar its answers were held to: "confident" answers were
# proven right at least target_precision of the time (a 95% bound, convert/calibrate.py) at the model's own
# threshold (unknown at another one).
MODEL_ID: ModelId = {
    "name": MODEL.meta["name"],
    "sha256": MODEL.meta["tflite_sha256"],
    "min_confidence": MIN_CONFIDENCE,
    "target_precision": MODEL.meta["calibration"]["target_precision"] if SETTINGS.min_confidence is None else None,
}
# A urls batch fetches in parallel; decoding takes turns, so a request's peak memory is this many decoded
# images (MAX_DECODED_BYTES each, and their RGB copies). Inference takes turns anyway.
DECODING = threading.BoundedSemaphore(settings.DECODERS)


@contextmanager
def timed(timings: dict, key: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + (time.perf_counter() - started) * 1000


def rounded(timings: dict) -> dict:
    """Timings as a log record carries them: milliseconds to 0.1, counts as they are."""
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in timings.items()}


def out_of_time() -> RequestError:
    return RequestError("out_of_time", "not answered before the function's time ran out; send it again")


def in_time(deadline: float) -> None:
    """Between steps: past the request's deadline no step starts, so no work outlives its request to slow the
    next invocation (a frozen Lambda instance resumes with whatever threads it had)."""
    if time.monotonic() > deadline:
        raise out_of_time()


def predict(image: bytes, timings: dict, deadline: float) -> Prediction:
    """Image file bytes -> the top label, its calibrated probability, whether it is confident (else the
    candidates), and every class's probability, highest first (lambda_fn/confidence.py)."""
    with DECODING:
        in_time(deadline)  # it may have waited its turn past it
        with timed(timings, "preprocess_ms"):
            x = MODEL.input_of(image, SETTINGS.max_decoded_bytes)
    in_time(deadline)
    with timed(timings, "inference_ms"):
        probabilities = calibrated(MODEL.logits(x)[0], MODEL.temperature)
    return answer(MODEL.labels, probabilities, MIN_CONFIDENCE)


def limits_until(deadline: float) -> FetchLimits:
    """The fetch's limits, its time cut to what is left of the request's."""
    left = max(deadline - time.monotonic(), 0.001)
    return dataclasses.replace(SETTINGS.fetch, total_timeout=min(SETTINGS.fetch.total_timeout, left))


def predict_fetched(download: Callable[[FetchLimits], bytes], timings: dict, deadline: float) -> Prediction:
    """The download (a URL's, an S3 object's) ends by the request's deadline too (its watchdog closes the
    connection then)."""
    with timed(timings, "fetch_ms"):
        try:
            image = download(limits_until(deadline))
        except RequestError as err:
            if err.code == "upstream_timeout" and time.monotonic() >= deadline:
                raise out_of_time() from None  # cut short by the request's time, not by the server's slowness
            raise
    timings["bytes"] = timings.get("bytes", 0) + len(image)
    return predict(image, timings, deadline)


def predict_url(url: str, timings: dict, deadline: float) -> Prediction:
    return predict_fetched(lambda limits: fetch(url, limits), timings, deadline)


def predict_object(ref: ObjectRef, timings: dict, deadline: float) -> Prediction:
    return predict_fetched(lambda limits: objects.read(ref, limits, SETTINGS.catalog_bucket), timings, deadline)


def each_object(refs: list[ObjectRef], answer_one: Callable[[ObjectRef], dict], request_id: str, deadline: float):
    """One answer per object, in order (Batch Operations sends one; S3 one record an event): its own, or its
    error; past the request's deadline, out_of_time."""
    answers = []
    for ref in refs:
        try:
            in_time(deadline)
            answers.append(answer_one(ref))
        except RequestError as err:
            answers.append(err.body())
        except Exception:  # a bug, but one object never fails the others
            log.exception("unexpected failure for %s in request %s", ref, request_id)
            answers.append(internal_error(request_id))
    return answers


def answer_tasks(job: events.BatchTasks, timings: dict, request_id: str, deadline: float) -> dict:
    """Each task's prediction or error, beside the invocation that events.batch_answer shapes them for."""
    refs = [ref for _, ref in job.tasks]
    answers = each_object(refs, lambda ref: dict(predict_object(ref, timings, deadline)), request_id, deadline)
    return {
        "invocation": job,
        "results": [{"taskId": task, **a} for (task, _), a in zip(job.tasks, answers, strict=True)],
    }


def tag_upload(ref: ObjectRef, timings: dict, deadline: float) -> dict:
    """Classify a new object and write the answer on it as tags; a photo that can never be classified is
    tagged with why (objects.fault_tags), so that it shows among those to review."""
    try:
        prediction: dict = dict(predict_object(ref, timings, deadline))
        tags = objects.prediction_tags(prediction)
    except RequestError as err:
        if err.code not in objects.PHOTO_FAULTS:
            raise
        objects.tag(ref, objects.fault_tags(err.code), limits_until(deadline), SETTINGS.catalog_bucket)
        raise
    with timed(timings, "tag_ms"):
        objects.tag(ref, tags, limits_until(deadline), SETTINGS.catalog_bucket)
    return {**prediction, "tags": tags}


def answer_uploads(refs: list[ObjectRef], timings: dict, request_id: str, deadline: float) -> dict:
    answers = each_object(refs, lambda ref: tag_upload(ref, timings, deadline), request_id, deadline)
    return {"results": [{"object": str(ref), **a} for ref, a in zip(refs, answers, strict=True)]}


def predict_urls(urls: list[str], timings: dict, request_id: str, deadline: float) -> list[dict]:
    """One result per URL, in order: its prediction, or its own error; a URL given twice is fetched once.
    At the deadline (time.monotonic()), the entries not finished are answered as out of time. Each entry
    logs its own record (url, status, code, timings), and the request's record counts them."""

    def one(url):
        own: dict[str, float] = {}
        try:
            return {"url": url, **predict_url(url, own, deadline)}, own
        except RequestError as err:
            return {"url": url, **err.body()}, own
        except Exception:  # a bug, but one entry never fails the batch
            log.exception("unexpected failure for one URL in request %s", request_id)
            return {"url": url, **internal_error(request_id)}, own

    unique = list(dict.fromkeys(urls))
    pool = ThreadPoolExecutor(max_workers=min(settings.BATCH_WORKERS, len(unique)))  # downloads overlap
    futures = {url: pool.submit(one, url) for url in unique}
    finished, _ = wait(futures.values(), timeout=max(deadline - time.monotonic(), 0))
    pool.shutdown(wait=False, cancel_futures=True)  # what is still running stops at its next step (in_time)
    late = out_of_time()
    results = {
        url: future.result() if future in finished else ({"url": url, **late.body()}, {})
        for url, future in futures.items()
    }
    for url, (result, own) in results.items():
        for key, value in own.items():
            timings[key] = timings.get(key, 0) + value
        error = result.get("error") or {}
        entry = {
            "requestId": request_id,
            "url": url,
            "status": error.get("status", 200),
            "code": error.get("code"),
            "label": result.get("label"),
            "confident": result.get("confident"),
            **rounded(own),
        }
        metrics_log.info("urls entry", extra=metrics.embedded_entry(entry, SERIES))  # its label: a per-label count
    failed = sum("error" in result for result, _ in results.values())
    timings.update(succeeded=len(results) - failed, failed=failed)
    return [results[url][0] for url in urls]


def internal_error(request_id: str) -> dict:
    body = error_body(500, "internal_error", f"unexpected failure; request id {request_id}")
    body["error"]["request_id"] = request_id
    return body


def answer_image(image: bytes, timings: dict, deadline: float) -> Prediction:
    timings["bytes"] = len(image)
    return predict(image, timings, deadline)


# What each kind of request gets (events.Kind): a new kind is one row here and its parser in events.py.
# Each row: (the request's value, timings, request id, deadline) -> the answer (the page: its HTML).
ANSWERS: dict[Kind, Callable[[Any, dict, str, float], Mapping[str, object] | str]] = {
    Kind.URL: lambda url, timings, _, deadline: predict_url(url, timings, deadline),
    Kind.URLS: lambda urls, timings, request_id, deadline: {
        "results": predict_urls(urls, timings, request_id, deadline)
    },
    Kind.IMAGE: lambda image, timings, _, deadline: answer_image(image, timings, deadline),
    Kind.UPLOAD: lambda image, timings, _, deadline: answer_image(image, timings, deadline),
    Kind.PAGE: lambda *_: events.PAGE,
    Kind.S3_TASKS: answer_tasks,
    Kind.S3_UPLOADS: answer_uploads,
}


def deadline_of(context) -> float:
    """When the answer must be under way (time.monotonic()): Lambda's context knows the invocation's end."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    seconds = remaining_ms() / 1000 if callable(remaining_ms) else SETTINGS.function_timeout
    return time.monotonic() + seconds - settings.ANSWER_SECONDS


def lambda_handler(event, context):
    started = time.perf_counter()
    deadline = deadline_of(context)
    request_id = getattr(context, "aws_request_id", None) or str(uuid.uuid4())
    record: dict[str, object] = {"requestId": request_id, "input": None, "cold_start": metrics.cold_start()}
    timings: dict[str, float] = {}
    source = events.source_of(event)  # API Gateway or a direct invocation, decided once
    try:
        request = source.parse(event, SETTINGS.max_urls, SETTINGS.fetch.max_bytes)
        record["input"] = request.kind
        answered = ANSWERS[request.kind](request.value, timings, request_id, deadline)
        # every prediction names the model that made it (the page is HTML: it has no model)
        status, body = 200, {**answered, "model": MODEL_ID} if isinstance(answered, Mapping) else answered
    except RequestError as err:
        status, body = err.status, err.body()
    except Exception:
        log.exception("unexpected failure in request %s", request_id)
        status, body = 500, internal_error(request_id)
    record.update(rounded(timings))
    counted: dict[str, Any] = body if isinstance(body, dict) else {}
    batch = "results" in counted
    record.update(label=counted.get("label"), status=status)  # and confident, not_sure ...: counts (metrics.py)
    record.update(metrics.outcome_counts(status, counted["results"] if batch else [counted], batch, NOT_SURE_SHARE))
    record["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)
    # fields at top level (Lambda's JSON log format, lambda_fn/logs.py), with the EMF block that makes them metrics
    metrics_log.info("request", extra=metrics.embedded(record, SERIES))
    return source.respond(status, body, SETTINGS.cors_origin)
