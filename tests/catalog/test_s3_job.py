"""catalog/s3_job.py: the manifest from a real S3 listing (radosgw on 127.0.0.1), and a CreateJob request that
S3 Control's own model (botocore's) accepts. S3 Control itself is not here: the request is validated, not sent."""

import csv
import io
from urllib.parse import unquote

import pytest

from catalog import s3_job

ROLE = "arn:aws:iam::123456789012:role/fashion-BatchOperationsRole-1"
FUNCTION = "arn:aws:lambda:eu-west-1:123456789012:function:fashion:live"
KEYS = ["shop/a hat.jpg", "shop/niño+1.PNG", "shop/deep/dress.webp", "shop/notes.txt", "other/skirt.jpg"]


@pytest.fixture(scope="module")
def shop(s3_server, image_files):
    """A bucket of photos (and one file that is not) and a bucket for the manifests and reports."""
    client = s3_server.client()
    for bucket in ("job-shop", "job-reports"):
        client.create_bucket(Bucket=bucket)
    for key in KEYS:
        client.put_object(Bucket="job-shop", Key=key, Body=image_files["hat.jpg"].read_bytes())
    return client


def args(*extra: str):
    base = ["--bucket", "job-shop", "--prefix", "shop/", "--function-arn", FUNCTION, "--role-arn", ROLE]
    return s3_job.parse_args([*base, "--report-bucket", "job-reports", *extra])


class NoS3Control:
    """Where S3 Control would be: records the request it was sent."""

    def __init__(self):
        self.sent: list[dict] = []

    def create_job(self, **request):
        self.sent.append(request)
        return {"JobId": "local-1"}


def test_the_manifest_lists_the_prefixs_photos_and_the_job_request_is_valid(shop):
    control = NoS3Control()
    request = s3_job.run(args("--token", "t-1"), shop, control)
    assert control.sent == [request] and s3_job.problems(request) == ""
    manifest = shop.get_object(Bucket="job-reports", Key="manifests/t-1.csv")
    assert manifest["ETag"].strip('"') == request["Manifest"]["Location"]["ETag"]
    rows = list(csv.reader(io.StringIO(manifest["Body"].read().decode())))
    assert {(bucket, unquote(key)) for bucket, key in rows} == {
        ("job-shop", "shop/a hat.jpg"),
        ("job-shop", "shop/niño+1.PNG"),
        ("job-shop", "shop/deep/dress.webp"),
    }
    assert request["Manifest"]["Location"]["ObjectArn"] == "arn:aws:s3:::job-reports/manifests/t-1.csv"
    assert request["Operation"]["LambdaInvoke"] == {"FunctionArn": FUNCTION, "InvocationSchemaVersion": "2.0"}
    assert request["AccountId"] == "123456789012" and request["Report"]["ReportScope"] == "AllTasks"


def test_a_dry_run_writes_and_creates_nothing(shop, capsys):
    control = NoS3Control()
    request = s3_job.run(args("--token", "t-dry", "--dry-run"), shop, control)
    assert control.sent == [] and s3_job.problems(request) == ""
    listed = shop.list_objects_v2(Bucket="job-reports", Prefix="manifests/t-dry").get("Contents", [])
    assert listed == []
    assert "3 photos in the manifest" in capsys.readouterr().err


def test_an_inventory_manifest_is_used_as_it_is(shop):
    shop.put_object(Bucket="job-reports", Key="inventory/manifest.json", Body=b"{}")
    request = s3_job.run(args("--inventory-manifest", "s3://job-reports/inventory/manifest.json"), shop, NoS3Control())
    assert request["Manifest"]["Spec"] == {"Format": "S3InventoryReport_CSV_20161130"}
    assert s3_job.problems(request) == ""


def test_botocores_model_catches_a_broken_request():
    request = s3_job.job_request(
        args(), {"ObjectArn": "arn:aws:s3:::b/k", "ETag": "e"}, "S3BatchOperations_CSV_20180820"
    )
    del request["RoleArn"]
    request["Priority"] = "high"
    found = s3_job.problems(request)
    assert "RoleArn" in found and "Priority" in found


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--prefix", "nothing-here/"], "no photos under"),
        (["--inventory-manifest", "job-reports/manifest.json"], "is not s3://"),
    ],
)
def test_bad_arguments_are_refused_by_name(shop, extra, message):
    with pytest.raises(ValueError, match=message):
        s3_job.run(args(*extra), shop, NoS3Control())


def test_a_role_arn_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="is not an IAM role's ARN"):
        s3_job.arn_parts("arn:aws:s3:::bucket")
