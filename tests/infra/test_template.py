"""infra/template.yaml: cfn-lint, and what AWS's SAM transform makes of it (the stack `sam deploy` creates)."""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from harness import REPO, TEMPLATE

SAMPLE_EVENTS = sorted((REPO / "infra" / "events").glob("*.json"))


def test_there_is_a_template():
    assert [t.name for t in (REPO / "infra").glob("*.yaml")] == [TEMPLATE.name]


def test_cfn_lint_finds_no_errors_or_warnings():
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout == "", result.stdout + result.stderr


def test_every_lambda_setting_is_declared_in_the_template(template):
    """The environment variables lambda_fn/settings.py reads are the ones the template sets."""
    from lambda_fn import settings

    class Recording(dict):
        read: set[str] = set()

        def get(self, key, default=None):
            self.read.add(key)
            return super().get(key, default)

    settings.load(Recording())
    assert {"MODEL_DIR", "MODEL_THREADS", "MAX_URLS", "LOG_LEVEL"} <= Recording.read
    assert Recording.read == set(template["Resources"]["Function"]["Properties"]["Environment"]["Variables"])


def test_model_dir_in_the_template_is_where_the_image_puts_the_bundle(template):
    from harness.dockerfile import instructions

    env = dict(rest.split("=", 1) for op, rest in instructions() if op == "ENV")
    declared = template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]["MODEL_DIR"]
    assert env["MODEL_DIR"].replace("${LAMBDA_TASK_ROOT}", "/var/task") == declared


def test_sam_build_passes_the_model_variant_the_conversion_writes(template):
    from convert.variants import VARIANTS
    from harness.dockerfile import instructions

    assert ("ARG", "MODEL_VARIANT=float32") in instructions()
    assert template["Resources"]["Function"]["Metadata"]["DockerBuildArgs"] == {
        "MODEL_VARIANT": {"Ref": "ModelVariant"}
    }
    assert template["Parameters"]["ModelVariant"]["AllowedValues"] == list(VARIANTS)


def test_both_routes_call_the_live_alias(transformed):
    """POST /predict and GET / are the function's HttpApi events (what sam local start-api serves); SAM points
    each at the alias that provisioned concurrency warms, with a permission for that route alone."""
    resources = transformed()
    paths = resources["Api"]["Properties"]["Body"]["paths"]
    assert {(path, method) for path, item in paths.items() for method in item} == {("/predict", "post"), ("/", "get")}
    for path, item in paths.items():
        (operation,) = item.values()
        integration = operation["x-amazon-apigateway-integration"]
        assert integration["payloadFormatVersion"] == "2.0" and integration["type"] == "aws_proxy"
        assert "${FunctionAliaslive}" in integration["uri"]["Fn::Sub"], path
    permissions = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission" and r["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert len(permissions) == 2 and all(p["FunctionName"] == {"Ref": "FunctionAliaslive"} for p in permissions)
    assert resources["FunctionAliaslive"]["Properties"]["Name"] == "live"


def test_require_iam_switches_sigv4_on_for_both_routes(transformed):
    body = transformed()["Api"]["Properties"]["Body"]
    scheme = body["components"]["securitySchemes"]["AWS_IAM"]
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4" and scheme["name"] == "Authorization"
    for item in body["paths"].values():
        (operation,) = item.values()  # CloudFormation picks a branch from the RequireIam parameter
        assert operation["security"] == {"Fn::If": ["UseIam", [{"AWS_IAM": []}], {"Ref": "AWS::NoValue"}]}


def test_throttling_cors_and_stage(transformed, template):
    resources = transformed(CorsAllowOrigin="https://shop.example.com")
    stage = next(r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Stage")
    assert stage["StageName"] == "$default" and stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": {"Ref": "ThrottleRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "ThrottleBurstLimit"},
    }
    cors = resources["Api"]["Properties"]["Body"]["x-amazon-apigateway-cors"]
    assert cors["allowOrigins"] == ["https://shop.example.com"] and cors["allowMethods"] == ["POST", "OPTIONS"]
    assert {"content-type", "authorization"} <= set(cors["allowHeaders"])
    assert set(template["Outputs"]) == {
        "ApiUrl",
        "FunctionName",
        "FunctionArn",
        "FunctionAliasArn",
        "DashboardUrl",
        "AlarmTopicArn",
        "BatchOperationsRoleArn",  # with a CatalogBucket
        "CatalogJobsBucket",  # with a CatalogBucket
    }


def test_function_logs_json_to_its_own_group(transformed):
    properties = transformed()["Function"]["Properties"]
    assert properties["LoggingConfig"]["LogFormat"] == "JSON"
    assert properties["LoggingConfig"]["LogGroup"] == {"Ref": "FunctionLogs"}
    assert properties["PackageType"] == "Image"


def test_samconfig_builds_this_template():
    config = tomllib.loads((REPO / "samconfig.toml").read_text())
    assert (REPO / config["default"]["build"]["parameters"]["template_file"]).resolve() == TEMPLATE
    assert "CAPABILITY_IAM" in config["default"]["deploy"]["parameters"]["capabilities"]


@pytest.mark.parametrize("path", SAMPLE_EVENTS, ids=lambda p: p.name)
def test_sample_events_run_as_they_are(path):
    """infra/events/: what a user passes to sam local invoke -e or the RIE, with nothing to fill in."""
    from lambda_fn import events

    text = path.read_text()
    assert "{image_server}" not in text
    request = events.parse(json.loads(text), max_urls=10, max_bytes=10 << 20)
    assert request.kind in {"url", "urls", "image", "upload", "page"}


def test_sample_events_cover_each_way_in():
    from lambda_fn import events

    kinds = {events.parse(json.loads(p.read_text()), 10, 10 << 20).kind for p in SAMPLE_EVENTS}
    assert kinds == {"url", "image", "upload", "page"}


def test_env_vars_example_names_only_declared_variables(template):
    """sam local invoke --env-vars ignores a variable the template does not declare: none may be missing."""
    example = json.loads((REPO / "infra" / "env.json").read_text())
    declared = set(template["Resources"]["Function"]["Properties"]["Environment"]["Variables"])
    assert list(example) == ["Function"] and set(example["Function"]) <= declared


ROLLBACK_ALARMS = ["ErrorsAlarm", "ServerErrorsAlarm", "InferenceLatencyAlarm", "AnswersAlarm"]


def deployment_types(template) -> list[str]:
    return template["Parameters"]["DeploymentType"]["AllowedValues"]


def test_every_deployment_type_shifts_the_live_alias_and_rolls_back_on_the_alarms(transformed, template):
    """SAM's DeploymentPreference: a CodeDeploy deployment group per type, the alias updated through it after the
    PreTraffic hook, the alarms that roll it back; provisioned concurrency stays on the alias."""
    for kind in deployment_types(template):
        resources = transformed(DeploymentType=kind, ProvisionedConcurrency="2")
        (group,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::CodeDeploy::DeploymentGroup"]
        config = {"Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": kind}]}
        assert group["DeploymentConfigName"] == config
        alarms = [a["Name"] for a in group["AlarmConfiguration"]["Alarms"]]
        assert alarms == [{"Ref": name} for name in ROLLBACK_ALARMS] and group["AlarmConfiguration"]["Enabled"]
        assert group["AutoRollbackConfiguration"]["Enabled"] is True
        alias = resources["FunctionAliaslive"]
        assert alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["BeforeAllowTrafficHook"] == {
            "Ref": "PreTrafficHook"
        }
        assert alias["Properties"]["ProvisionedConcurrencyConfig"]["Fn::If"][1] == {
            "ProvisionedConcurrentExecutions": {"Ref": "ProvisionedConcurrency"}
        }


def test_the_alarm_email_is_subscribed_only_when_given(transformed):
    """The subscription is conditional (CloudFormation resolves HasAlarmEmail at deploy); every alarm notifies
    the topic."""
    subscription = transformed(AlarmEmail="ops@example.com")["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail" and subscription["Properties"]["Protocol"] == "email"
    every_alarm = [r for r in transformed().values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert len(every_alarm) == 12 and all(
        a["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in every_alarm
    )


def admitted(template, name: str) -> range:
    parameter = template["Parameters"][name]
    return range(int(parameter["MinValue"]), int(parameter["MaxValue"]) + 1)


def test_the_function_starts_with_every_combination_the_template_admits(template):
    """The start-up rule (lambda_fn/settings.load) over the whole space of Timeout, MaxUrls and FetchTimeout the
    template's limits admit: no deployable stack refuses to start."""
    from lambda_fn import settings

    variables = template["Resources"]["Function"]["Properties"]["Environment"]["Variables"]
    assert variables["FUNCTION_TIMEOUT"] == {"Ref": "Timeout"} and variables["FETCH_TIMEOUT"] == {"Ref": "FetchTimeout"}
    assert variables["MAX_URLS"] == {"Ref": "MaxUrls"}
    refused = []
    for timeout in admitted(template, "Timeout"):
        for urls in admitted(template, "MaxUrls"):
            for fetch in admitted(template, "FetchTimeout"):
                env = {"FUNCTION_TIMEOUT": str(timeout), "MAX_URLS": str(urls), "FETCH_TIMEOUT": str(fetch)}
                try:
                    settings.load(env)
                except ValueError:
                    refused.append(env)
    assert refused == []


def policy_statements(resources: dict, condition: str) -> list[dict]:
    """The statements of the function role's policy that the condition switches on."""
    found = []
    for policy in resources["FunctionRole"]["Properties"]["Policies"]:
        if "Fn::If" in policy and policy["Fn::If"][0] == condition:
            found += policy["Fn::If"][1]["PolicyDocument"]["Statement"]
    return found


@pytest.mark.parametrize(
    "parameters",
    [{}, {"CatalogBucket": "shop-photos"}, {"CatalogBucket": "shop-photos", "TagOnUpload": "true"}],
    ids=["off", "batch-only", "tag-on-upload"],
)
def test_the_catalog_is_read_with_least_privilege(transformed, template, parameters):
    """GetObject on the catalog's objects alone; tagging only with TagOnUpload; never s3:PutObject on it; the
    catalog's resources made only with a bucket (CloudFormation resolves the conditions at deploy)."""
    resources = transformed(**parameters)
    conditions = template["Conditions"]
    assert conditions["ReadsCatalog"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "CatalogBucket"}, ""]}]}
    assert {"Condition": "ReadsCatalog"} in conditions["TagsOnUpload"]["Fn::And"]
    catalog_objects = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${CatalogBucket}/*"}
    (read,) = policy_statements(resources, "ReadsCatalog")
    assert read["Action"] == ["s3:GetObject", "s3:GetObjectVersion"] and read["Resource"] == catalog_objects
    (tagging,) = policy_statements(resources, "TagsOnUpload")
    assert all(action.endswith("Tagging") for action in tagging["Action"]) and tagging["Resource"] == catalog_objects
    assert '"s3:PutObject"' not in json.dumps(resources["FunctionRole"])
    variables = resources["Function"]["Properties"]["Environment"]["Variables"]
    assert variables["CATALOG_BUCKET"] == {"Ref": "CatalogBucket"}
    for name, condition in [
        ("CatalogJobs", "ReadsCatalog"),
        ("BatchOperationsRole", "ReadsCatalog"),
        ("UploadRule", "TagsOnUpload"),
        ("UploadRulePermission", "TagsOnUpload"),
    ]:
        assert resources[name]["Condition"] == condition


def test_batch_operations_may_invoke_the_function_and_write_reports_beside_the_catalog(transformed, template):
    resources = transformed(CatalogBucket="shop-photos")
    role = resources["BatchOperationsRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {
        "lambda:InvokeFunction",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:GetBucketLocation",
    }
    (put,) = [s for s in statements if s["Action"] == "s3:PutObject"]
    assert put["Resource"] == {"Fn::Sub": "${CatalogJobs.Arn}/*"}  # reports never land in the catalog itself
    outputs = template["Outputs"]
    assert outputs["BatchOperationsRoleArn"]["Value"] == {"Fn::GetAtt": ["BatchOperationsRole", "Arn"]}


def test_uploads_reach_the_live_alias_through_eventbridge(transformed):
    resources = transformed(CatalogBucket="shop-photos", TagOnUpload="true")
    rule = resources["UploadRule"]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [{"Ref": "CatalogBucket"}]}},
    }
    (target,) = rule["Targets"]
    alias = target["Arn"]["Ref"]
    assert resources[alias]["Type"] == "AWS::Lambda::Alias"
    permission = resources["UploadRulePermission"]["Properties"]
    assert permission["FunctionName"] == {"Ref": alias} and permission["Principal"] == "events.amazonaws.com"
