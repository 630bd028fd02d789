"""Classify a bucket's photos with S3 Batch Operations: a manifest, then a job that invokes the function.

    python -m catalog.s3_job --bucket shop-photos --prefix catalog/ \\
        --function-arn <FunctionAliasArn> --role-arn <BatchOperationsRoleArn> --report-bucket <CatalogJobsBucket>

Lists the photos under the prefix (every .jpg, .jpeg, .png and .webp), writes them as a CSV manifest to the
report bucket (manifests/), and creates the job through S3 Control's CreateJob: Batch Operations then invokes
the function once per photo, retries what fails for now, and writes a completion report (reports/) whose
ResultMessage is each photo's answer. --inventory-manifest uses an S3 Inventory report's manifest.json instead
of listing (for millions of objects: no listing at all). --dry-run lists, and prints the manifest's first
lines and the CreateJob request without writing or creating anything. The outputs named above are the
stack's (infra/template.yaml, with CatalogBucket set); docs/s3.md sizes a large job.
"""

import argparse
import hashlib
import json
import sys
import uuid
from collections.abc import Iterable, Iterator
from urllib.parse import quote

from catalog.sources import IMAGE_SUFFIXES

MANIFESTS, REPORTS = "manifests", "reports"  # prefixes in the report bucket
SCHEMA = "2.0"  # the invocation schema the function is asked for (it reads 1.0 too): buckets by name


def photo_keys(s3, bucket: str, prefix: str) -> Iterator[str]:
    """Every photo's key under the prefix, as S3 lists them (in key order, a page of 1,000 at a time)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if any(obj["Key"].lower().endswith(suffix) for suffix in IMAGE_SUFFIXES):
                yield obj["Key"]


def manifest_csv(bucket: str, keys: Iterable[str]) -> bytes:
    """Batch Operations' CSV manifest (Bucket,Key): each key URL-encoded, as the format asks."""
    return "".join(f"{bucket},{quote(key, safe='/')}\n" for key in keys).encode()


def etag_of(body: bytes) -> str:
    """S3's ETag of an object put in one part: its MD5."""
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def arn_parts(role_arn: str) -> tuple[str, str]:
    """(partition, account id) of an IAM role's ARN: the job runs in that account."""
    parts = role_arn.split(":")
    if len(parts) < 6 or parts[0] != "arn" or parts[2] != "iam" or not parts[4].isdigit():
        raise ValueError(f"--role-arn {role_arn!r} is not an IAM role's ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    return parts[1], parts[4]


def job_request(args: argparse.Namespace, manifest_location: dict, manifest_format: str) -> dict:
    """S3 Control's CreateJob input: invoke the function on each manifest entry, report every task."""
    partition, account = arn_parts(args.role_arn)
    fields = {"Fields": ["Bucket", "Key"]} if manifest_format == "S3BatchOperations_CSV_20180820" else {}
    return {
        "AccountId": account,
        "ConfirmationRequired": False,
        "Operation": {"LambdaInvoke": {"FunctionArn": args.function_arn, "InvocationSchemaVersion": SCHEMA}},
        "Manifest": {"Spec": {"Format": manifest_format, **fields}, "Location": manifest_location},
        "Report": {
            "Bucket": f"arn:{partition}:s3:::{args.report_bucket}",
            "Prefix": REPORTS,
            "Format": "Report_CSV_20180820",
            "Enabled": True,
            "ReportScope": "AllTasks",  # the succeeded tasks' results are the catalog's answers
        },
        "Priority": args.priority,
        "RoleArn": args.role_arn,
        "ClientRequestToken": args.token,
        "Description": f"classify s3://{args.bucket}/{args.prefix}"[:256],
    }


def problems(request: dict) -> str:
    """What S3 Control's own model (botocore's) finds wrong with a CreateJob request; empty if nothing."""
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("s3control").operation_model("CreateJob").input_shape
    report = ParamValidator().validate(request, shape)
    return report.generate_report() if report.has_errors() else ""


def inventory_location(s3, manifest_uri: str, partition: str) -> dict:
    """An S3 Inventory report's manifest.json (s3://bucket/key), by ARN and ETag."""
    if not manifest_uri.startswith("s3://") or "/" not in manifest_uri[5:]:
        raise ValueError(f"--inventory-manifest {manifest_uri!r} is not s3://BUCKET/KEY/manifest.json")
    bucket, key = manifest_uri[5:].split("/", 1)
    etag = s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    return {"ObjectArn": f"arn:{partition}:s3:::{bucket}/{key}", "ETag": etag}


def run(args: argparse.Namespace, s3, s3control) -> dict:
    """Write the manifest and create the job (or, with --dry-run, neither); returns the CreateJob request."""
    partition, _ = arn_parts(args.role_arn)
    if args.inventory_manifest:
        location, manifest_format = (
            inventory_location(s3, args.inventory_manifest, partition),
            "S3InventoryReport_CSV_20161130",
        )
    else:
        body = manifest_csv(args.bucket, photo_keys(s3, args.bucket, args.prefix))
        if not body:
            raise ValueError(f"no photos under s3://{args.bucket}/{args.prefix}")
        key = f"{MANIFESTS}/{args.token}.csv"
        location = {"ObjectArn": f"arn:{partition}:s3:::{args.report_bucket}/{key}", "ETag": etag_of(body)}
        manifest_format = "S3BatchOperations_CSV_20180820"
        photos = body.count(b"\n")
        print(f"{photos} photos in the manifest s3://{args.report_bucket}/{key}", file=sys.stderr)
        if not args.dry_run:
            s3.put_object(Bucket=args.report_bucket, Key=key, Body=body, ContentType="text/csv")
    request = job_request(args, location, manifest_format)
    if found := problems(request):
        raise ValueError(f"the CreateJob request is not valid: {found}")
    if not args.dry_run:
        job = s3control.create_job(**request)
        print(f"created job {job['JobId']}: aws s3control describe-job --account-id {request['AccountId']} "
              f"--job-id {job['JobId']}", file=sys.stderr)  # fmt: skip
    return request


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bucket", required=True, help="the catalog bucket (the stack's CatalogBucket)")
    p.add_argument("--prefix", default="", help="only photos whose key starts with this")
    p.add_argument("--function-arn", required=True, help="the function (its live alias: the FunctionAliasArn output)")
    p.add_argument("--role-arn", required=True, help="the role Batch Operations assumes (BatchOperationsRoleArn)")
    p.add_argument("--report-bucket", required=True, help="where the manifest and reports go (CatalogJobsBucket)")
    p.add_argument("--inventory-manifest", help="s3://BUCKET/KEY/manifest.json of an S3 Inventory report: no listing")
    p.add_argument("--priority", type=int, default=10, help="among the account's jobs: higher runs first")
    p.add_argument("--token", default=str(uuid.uuid4()), help="the job's idempotency token (and manifest's name)")
    p.add_argument("--dry-run", action="store_true", help="print the request; write and create nothing")
    return p.parse_args(argv)


def main(argv=None) -> int:
    import boto3

    args = parse_args(argv)
    try:
        request = run(args, boto3.client("s3"), boto3.client("s3control"))
    except ValueError as err:
        print(f"s3_job: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(request, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
