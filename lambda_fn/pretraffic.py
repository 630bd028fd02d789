"""CodeDeploy's PreTraffic hook: before a new version gets any traffic, it must answer known photos as promised.

    handler: lambda_fn.pretraffic.handler  (the function's image, another command: infra/template.yaml)

The conversion writes a handful of validation photos into the bundle (checks/) and, in model.json's "checks",
what the verified model answered for each on LiteRT. The hook runs in the same image as the new version, so it
holds the same bundle: it invokes the new version (the NEW_VERSION ARN) with each photo, as a caller would,
and reports Failed to CodeDeploy (which then shifts no traffic and rolls back) unless every answer has the
promised label and probability, names the model file model.json describes (its sha256), and the model's own
time (inference_ms, from the request record in the invocation's log tail) is within LATENCY_FACTOR of the
single-thread latency the conversion measured. It loads no model and imports nothing of the serving path.
"""

import base64
import json
import logging
import os
import shutil
import statistics
from collections.abc import Callable
from pathlib import Path

from lambda_fn.settings import DEFAULT_MODEL_DIR

BUNDLE = Path(os.environ.get("MODEL_DIR", DEFAULT_MODEL_DIR))  # the image's bundle (Dockerfile.lambda)
CHECKS_FOLDER = "checks"  # in the bundle, beside model.json
PROBABILITY_TOLERANCE = 1e-3  # the same interpreter on the same bytes: only the rounding of threads may differ
# Lambda's share of a vCPU (1,769 MB buys one) and its cores are slower than the conversion machine's one
# thread; a model LATENCY_FACTOR times slower than promised is a different model or a starved function.
LATENCY_FACTOR = 3.0
Invoke = Callable[[dict], tuple[dict, list[str]]]  # an event -> (the answer, the function's log lines)

log = logging.getLogger("fashion.pretraffic")


def write_checks(bundle: Path, photos: list[tuple[Path, str]], answers: list[tuple[str, float]]) -> list[dict]:
    """The conversion's side: copy each (photo, its true label) into the bundle's checks/ and return model.json's
    "checks", each with the label and probability the verified model answered for it."""
    folder = bundle / CHECKS_FOLDER
    folder.mkdir(exist_ok=True)
    checks = []
    for k, ((photo, truth), (label, probability)) in enumerate(zip(photos, answers, strict=True)):
        name = f"{CHECKS_FOLDER}/{k:02d}{photo.suffix.lower()}"
        shutil.copyfile(photo, bundle / name)
        checks.append({"file": name, "truth": truth, "label": label, "probability": round(probability, 6)})
    return checks


def inference_ms(lines: list[str]) -> float | None:
    """The model's time from the request's record (lambda_fn/app.py logs one a request, as JSON)."""
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("message") == "request" and "inference_ms" in record:
            return float(record["inference_ms"])
    return None


def answer_problems(check: dict, answer: dict, digest: str) -> list[str]:
    name = check["file"]
    if "errorMessage" in answer or "error" in answer:
        return [f"{name}: the new version failed: {answer.get('errorMessage') or answer.get('error')}"]
    problems = []
    if answer.get("label") != check["label"]:
        problems.append(f"{name}: answered {answer.get('label')!r}, the conversion's model {check['label']!r}")
    elif abs(answer.get("probability", -1) - check["probability"]) > PROBABILITY_TOLERANCE:
        problems.append(f"{name}: probability {answer.get('probability')}, promised {check['probability']}")
    if answer.get("model", {}).get("sha256") != digest:
        problems.append(f"{name}: served model {answer.get('model', {}).get('sha256')!r}, model.json's is {digest!r}")
    return problems


def check(invoke: Invoke, bundle: Path = BUNDLE) -> list[str]:
    """What the new version got wrong on the bundle's check photos (empty: it keeps every promise)."""
    meta = json.loads((bundle / "model.json").read_text())
    checks = meta.get("checks") or []
    if not checks:
        return [f"{bundle / 'model.json'} names no check photos: convert the model again (make convert)"]
    problems, times = [], []
    for entry in checks:
        image = base64.b64encode((bundle / entry["file"]).read_bytes()).decode()
        answer, lines = invoke({"image": image})
        problems += answer_problems(entry, answer, meta["tflite_sha256"])
        spent = inference_ms(lines)
        if spent is not None:
            times.append(spent)
    if not times:
        return [*problems, "no invocation's log tail held its request record (inference_ms)"]
    typical = statistics.median(times[1:] or times)  # the first may pay the interpreter's warm-up
    bound = LATENCY_FACTOR * meta["parity"]["latency_ms_1_thread"]
    if typical > bound:
        problems.append(
            f"median inference {typical:g} ms over {bound:g} ms ({LATENCY_FACTOR:g} x the conversion's "
            f"{meta['parity']['latency_ms_1_thread']:g} ms on one thread)"
        )
    return problems


def lambda_invoker(client, qualified_arn: str) -> Invoke:
    """Invoke one version synchronously, as a direct caller does, with the last 4 KB of its log."""

    def invoke(event: dict) -> tuple[dict, list[str]]:
        response = client.invoke(
            FunctionName=qualified_arn,
            InvocationType="RequestResponse",
            LogType="Tail",
            Payload=json.dumps(event).encode(),
        )
        tail = base64.b64decode(response.get("LogResult", "")).decode(errors="replace")
        return json.loads(response["Payload"].read() or b"{}"), tail.splitlines()

    return invoke


def run(event: dict, invoke: Invoke, codedeploy, bundle: Path = BUNDLE) -> dict:
    """Check, then tell CodeDeploy (a check that cannot run is a failed check: no traffic on a doubt)."""
    try:
        problems = check(invoke, bundle)
    except Exception as err:  # a missing photo, an unreadable answer: the version is not proven
        log.exception("the PreTraffic check could not run")
        problems = [f"the check could not run: {err!r}"]
    status = "Failed" if problems else "Succeeded"
    log.log(logging.ERROR if problems else logging.INFO, "PreTraffic %s", status, extra={"problems": problems})
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=event["DeploymentId"],
        lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
        status=status,
    )
    return {"status": status, "problems": problems}


def handler(event, context):
    import boto3  # in every Lambda Python base image; imported here so the serving path never loads it

    logging.getLogger().setLevel(logging.INFO)
    invoke = lambda_invoker(boto3.client("lambda"), os.environ["NEW_VERSION"])
    return run(event, invoke, boto3.client("codedeploy"))
