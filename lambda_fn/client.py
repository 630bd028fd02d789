"""Classify image URLs or local files through the function, wherever it runs.

    python -m lambda_fn.client --function fashion-classifier https://example.com/shirt.jpg
    python -m lambda_fn.client --endpoint http://localhost:9000 photo.jpg       # RIE or local server
    python -m lambda_fn.client --api https://abc.execute-api.eu-west-1.amazonaws.com photo.jpg [--iam]

--function and --endpoint invoke with boto3 (a URL as {"url": ...}, a file
as {"image": base64}); --api POSTs to <api>/predict (a URL as JSON, a file
as its raw bytes), signed with your AWS credentials when the API requires
IAM authorization (--iam).
"""

import argparse
import base64
import json
import mimetypes
import sys
import urllib.error
import urllib.request
from pathlib import Path


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def invoke(source: str, function: str, endpoint: str | None, region: str | None) -> dict:
    import boto3

    if endpoint:  # the RIE and the local server accept any credentials
        client = boto3.client(
            "lambda",
            endpoint_url=endpoint,
            region_name=region or "us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
    else:
        client = boto3.client("lambda", region_name=region)
    event = {"url": source} if is_url(source) else {"image": base64.b64encode(Path(source).read_bytes()).decode()}
    response = client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
    return json.loads(response["Payload"].read())


def post(source: str, api: str, iam: bool, region: str | None) -> dict:
    if is_url(source):
        body, content_type = json.dumps({"url": source}).encode(), "application/json"
    else:
        body, content_type = Path(source).read_bytes(), mimetypes.guess_type(source)[0] or "image/jpeg"
    url, headers = api.rstrip("/") + "/predict", {"Content-Type": content_type}
    if iam:
        headers = signed_headers(url, body, headers, region)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:  # the API's JSON error body says what was wrong
        return json.loads(err.read() or b"{}")


def signed_headers(url: str, body: bytes, headers: dict, region: str | None) -> dict:
    """SigV4 for an API whose route requires AWS_IAM authorization."""
    import boto3
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    session = boto3.Session(region_name=region)
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(session.get_credentials(), "execute-api", session.region_name).add_auth(request)
    return dict(request.headers)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", help="image URLs or local image files")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--function", help="a deployed function's name or ARN")
    where.add_argument("--endpoint", help="the RIE's or local server's base URL, e.g. http://localhost:9000")
    where.add_argument("--api", help="the API Gateway endpoint URL (the stack's ApiUrl output)")
    p.add_argument("--iam", action="store_true", help="sign --api requests (the stack's RequireIam=true)")
    p.add_argument("--region")
    args = p.parse_args(argv)
    failed = False
    for source in args.sources:
        if not is_url(source) and not Path(source).is_file():
            print(json.dumps({"source": source, "error": "neither an http(s) URL nor a readable file"}))
            failed = True
            continue
        if args.api:
            result = post(source, args.api, args.iam, args.region)
        else:
            result = invoke(source, args.function or "function", args.endpoint, args.region)
        print(json.dumps({"source": source, **result}, indent=2))
        failed = failed or "error" in result
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
