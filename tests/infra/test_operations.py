"""Operations that cannot go quiet (issue 42): under every combination the template admits, the alarms and the
dashboard read exactly the series the function writes, no log level drops the records that carry the metrics,
and each alarm's metric math says what its description says."""

import json
import logging
import math
import re

import pytest

from harness import REPO, TEMPLATE
from harness.cfn import Stack
from harness.cloudwatch import alarm_series, dashboard_widgets, metric_math, search_queries, widget_series
from harness.emf import emf_problems, published_series
from lambda_fn import logs, metrics, settings
from lambda_fn.logs import JsonLines

IMAGE_EVENT = json.loads((REPO / "infra" / "events" / "image.json").read_text())  # a real JPEG, direct
LAMBDA_LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]  # Lambda's, lowest first


def function_environment(stack: Stack) -> dict[str, str]:
    """The function's environment in Lambda: the template's variables and what Lambda sets itself."""
    function = stack.properties("Function")
    return {
        **{name: str(value) for name, value in function["Environment"]["Variables"].items()},
        "AWS_LAMBDA_FUNCTION_NAME": function["FunctionName"],
        # the version the live alias (the API, the canary) executes: the one this deploy publishes
        "AWS_LAMBDA_FUNCTION_VERSION": str(stack.properties("FunctionAliaslive")["FunctionVersion"]),
        "AWS_LAMBDA_LOG_LEVEL": function["LoggingConfig"]["ApplicationLogLevel"],
    }


def emf_records(app, caplog, events: list[dict]) -> list[dict]:
    """The EMF records the handler logs for these events, as JSON lines."""
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for event in events:
            app.lambda_handler(event, None)
    lines = [json.loads(JsonLines().format(r)) for r in caplog.records]
    return [line for line in lines if "_aws" in line]


def alarms(stack: Stack) -> dict[str, dict]:
    return {
        name: stack.properties(name)
        for name, resource in stack.resources.items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }


def dashboard_metrics(stack: Stack) -> list[list]:
    body = stack.properties("Dashboard")["DashboardBody"]
    return [row for w in dashboard_widgets(body) for row in w["properties"].get("metrics", [])]


def test_alarms_and_widgets_read_the_series_the_function_writes(
    deployed, template, app, monkeypatch, caplog, photo_url
):
    """Every (the stack's ModelVariant x the bundle's variant): the function refuses a bundle that is not the one
    the stack declares, and otherwise writes every series an alarm or a widget of its own namespace reads."""
    variants = template["Parameters"]["ModelVariant"]["AllowedValues"]
    # each variant with other settings too: none of them may move a series (they pair up, not multiply)
    others = [
        {},
        {"DeploymentType": "AllAtOnce", "LogLevel": "FATAL", "RequireIam": "true"},
        {"DeploymentType": "Linear10PercentEvery1Minute", "ProvisionedConcurrency": "2", "ReservedConcurrency": "0"},
        {"DeploymentType": "Canary10Percent30Minutes", "Architecture": "arm64", "AlarmEmail": "ops@example.com"},
        {"LogLevel": "DEBUG", "Architecture": "arm64"},
    ]
    for declared, settings_too in zip(variants, others, strict=True):
        stack = deployed(ModelVariant=declared, **settings_too)
        env = function_environment(stack)
        loaded = settings.load(env)
        for bundle in variants:
            meta = {**app.MODEL.meta, "variant": bundle}
            if bundle != declared:
                with pytest.raises(ValueError, match=f"MODEL_VARIANT='{declared}'.*bundle is '{bundle}'"):
                    metrics.Series.of(env, meta, loaded.model_variant)
                continue
            monkeypatch.setattr(app, "SERIES", metrics.Series.of(env, meta, loaded.model_variant))
            records = emf_records(app, caplog, [IMAGE_EVENT, {"url": photo_url}, {"url": 42}])
            assert records and all(emf_problems(r) == [] for r in records)
            written = set().union(*(published_series(r) for r in records))
            read = [s for a in alarms(stack).values() for s in alarm_series(a) if s[0] == metrics.NAMESPACE]
            read += [s for s in widget_series(dashboard_metrics(stack)) if s[0] == metrics.NAMESPACE]
            assert len(read) > 10 and [s for s in read if s not in written] == [], (declared, bundle)
            schemas = {frozenset(name for name, _ in dims) for _, _, dims in written}
            for namespace, names, terms in search_queries(dashboard_metrics(stack)):
                assert namespace == metrics.NAMESPACE and names in schemas
                assert terms["FunctionName"] == env["AWS_LAMBDA_FUNCTION_NAME"]
                assert (namespace, terms["MetricName"]) in {(n, m) for n, m, _ in written}


def test_lambdas_own_metrics_are_read_for_the_version_this_deploy_publishes(deployed):
    """AWS/Lambda's Errors by ExecutedVersion: the new version alone, not the alias's mix of old and new."""
    stack = deployed()
    env = function_environment(stack)
    (errors,) = alarm_series(alarms(stack)["ErrorsAlarm"])
    assert errors[:2] == ("AWS/Lambda", "Errors")
    assert dict(errors[2]) == {
        "FunctionName": env["AWS_LAMBDA_FUNCTION_NAME"],
        "Resource": f"{env['AWS_LAMBDA_FUNCTION_NAME']}:live",
        "ExecutedVersion": env["AWS_LAMBDA_FUNCTION_VERSION"],
    }


class Sink:
    """awslambdaric's log sink: what the runtime hands Lambda, line by line."""

    def __init__(self):
        self.lines: list[str] = []

    def log(self, message: str, frame_type=None) -> None:
        self.lines.append(message)


def lambda_keeps(line: str, application_level: str) -> bool:
    """Lambda's filter on a JSON log line: its "level" (missing or not a level: INFO) against ApplicationLogLevel."""
    level = str(json.loads(line).get("level", "INFO")).upper()
    level = {"WARNING": "WARN", "CRITICAL": "FATAL"}.get(level, level)
    level = level if level in LAMBDA_LEVELS else "INFO"
    return LAMBDA_LEVELS.index(level) >= LAMBDA_LEVELS.index(application_level)


def test_no_admitted_log_level_silences_the_metrics(deployed, template, app):
    """Each LogLevel the template admits, through awslambdaric's own logging set-up (the root logger at
    ApplicationLogLevel, its JSON formatter) and Lambda's level filter: the request's EMF record reaches CloudWatch
    valid, and the level still filters the function's other records."""
    from awslambdaric.bootstrap import _setup_logging
    from awslambdaric.lambda_runtime_log_utils import LogFormat, _get_log_level_from_env_var

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    silenced = []
    for chosen in template["Parameters"]["LogLevel"]["AllowedValues"]:
        env = function_environment(deployed(LogLevel=chosen))
        sink = Sink()
        _setup_logging(LogFormat.JSON, _get_log_level_from_env_var(env["AWS_LAMBDA_LOG_LEVEL"]), sink)
        try:
            logs.apply_level(settings.load(env).log_level)
            app.lambda_handler(IMAGE_EVENT, None)
            logging.getLogger("fashion").info("an ordinary record")
        finally:
            for handler in [h for h in root.handlers if h not in handlers]:
                root.removeHandler(handler)
            logs.apply_level(app.SETTINGS.log_level)
            root.setLevel(level)
        kept = [json.loads(line) for line in sink.lines if lambda_keeps(line, env["AWS_LAMBDA_LOG_LEVEL"])]
        emf = [line for line in kept if "_aws" in line]
        if len(emf) != 1 or emf_problems(emf[0]):
            silenced.append(chosen)
        ordinary = any(line.get("message") == "an ordinary record" for line in kept)
        assert ordinary is (chosen in ("DEBUG", "INFO")), chosen
    assert silenced == []


def test_every_alarm_says_why_it_treats_missing_data_as_it_does():
    text = TEMPLATE.read_text().splitlines()
    lines = [k for k, line in enumerate(text) if "TreatMissingData:" in line]
    assert len(lines) == 12
    assert all("#" in text[k] or text[k - 1].strip().startswith("#") for k in lines)


def expression(stack: Stack, alarm: str) -> tuple[str, float]:
    properties = alarms(stack)[alarm]
    (returned,) = [m for m in properties["Metrics"] if m.get("ReturnData")]
    return returned["Expression"], float(properties["Threshold"])


@pytest.mark.parametrize(
    "alarm, values, breaches",
    [
        ("HeartbeatAlarm", {"invocations": 100, "records": None}, True),  # the metrics stopped
        ("HeartbeatAlarm", {"invocations": 100, "records": 0}, True),
        ("HeartbeatAlarm", {"invocations": 100, "records": 97}, False),  # a few crashes: ErrorsAlarm's
        ("HeartbeatAlarm", {"invocations": 3, "records": None}, False),  # too few to judge
        ("ServerErrorsAlarm", {"errors": 1, "requests": 10}, True),
        ("ServerErrorsAlarm", {"errors": 0, "requests": 10}, False),
        ("ServerErrorsAlarm", {"errors": 1, "requests": 4}, False),
        # the new version "not sure" about everything, the function's mix at 20%
        ("AnswersAlarm", {"notsure": 20, "images": 20, "allnotsure": 58, "allimages": 220}, True),
        ("AnswersAlarm", {"notsure": 5, "images": 20, "allnotsure": 43, "allimages": 220}, False),
        ("AnswersAlarm", {"notsure": 9, "images": 9, "allnotsure": 40, "allimages": 200}, False),
        # production at 90% not sure where the conversion measured 20%; then at 25%
        ("DriftAlarm", {"notsure": 90, "expected": 20, "images": 100}, True),
        ("DriftAlarm", {"notsure": 25, "expected": 20, "images": 100}, False),
        ("DriftAlarm", {"notsure": 0, "expected": 0, "images": 100}, False),
        ("UpstreamErrorsAlarm", {"errors": 10, "requests": 20}, True),
    ],
)
def test_alarm_math(deployed, alarm, values, breaches):
    formula, threshold = expression(deployed(), alarm)
    value = metric_math(formula, **values)
    assert not math.isnan(value) and (value > threshold) is breaches, value


def test_rollback_alarms_watch_only_the_new_version_and_only_the_model(deployed):
    """The alarms CodeDeploy rolls back on read the version this deploy publishes, and none reads what an image
    host causes: its 502/504 (upstream_errors) or the request's whole time (duration_ms beyond its count)."""
    stack = deployed()
    group = next(
        stack.properties(n) for n, r in stack.resources.items() if r["Type"] == "AWS::CodeDeploy::DeploymentGroup"
    )
    rollback = [a["Name"] for a in group["AlarmConfiguration"]["Alarms"]]
    every = alarms(stack)
    assert rollback == ["ErrorsAlarm", "ServerErrorsAlarm", "InferenceLatencyAlarm", "AnswersAlarm"]
    for name in rollback:
        versioned = [s for s in alarm_series(every[name]) if {"ExecutedVersion", "FunctionVersion"} & dict(s[2]).keys()]
        assert versioned, name
        assert all(s[1] != "upstream_errors" for s in alarm_series(every[name]))
        stats = [m["MetricStat"] for m in every[name].get("Metrics", []) if "MetricStat" in m]
        assert all(s["Stat"] == "SampleCount" for s in stats if s["Metric"]["MetricName"] == "duration_ms")
    assert every["InferenceLatencyAlarm"]["MetricName"] == "inference_ms"
    assert re.search(r"images >= \d+", expression(stack, "AnswersAlarm")[0])


def test_the_pretraffic_hook_checks_the_version_this_deploy_publishes(deployed, template):
    """A CodeDeployHook_* function (what the role SAM gives CodeDeploy, AWSCodeDeployRoleForLambda, may invoke),
    built from the function's own image and bundle, running lambda_fn.pretraffic.handler, allowed to invoke the
    new version alone and to report to CodeDeploy."""
    from lambda_fn import pretraffic

    stack = deployed()
    hook, function = stack.properties("PreTrafficHook"), stack.properties("Function")
    assert hook["FunctionName"].startswith("CodeDeployHook_") and len(hook["FunctionName"]) <= 64
    (command,) = hook["ImageConfig"]["Command"]
    module, name = command.rsplit(".", 1)
    assert module == pretraffic.__name__ and callable(getattr(pretraffic, name))
    assert template["Resources"]["PreTrafficHook"]["Metadata"] == template["Resources"]["Function"]["Metadata"]
    new_version = f"{stack.properties('FunctionAliaslive')['FunctionVersion']}"
    assert hook["Environment"]["Variables"]["NEW_VERSION"].endswith(f":{function['FunctionName']}:{new_version}")
    (policy,) = stack.properties("PreTrafficHookRole")["Policies"]
    allowed = {s["Action"]: s["Resource"] for s in policy["PolicyDocument"]["Statement"]}
    assert allowed["lambda:InvokeFunction"] == hook["Environment"]["Variables"]["NEW_VERSION"]
    assert (
        ":deploymentgroup:ServerlessDeploymentApplication/"
        in allowed["codedeploy:PutLifecycleEventHookExecutionStatus"]
    )
    role = stack.properties("CodeDeployServiceRole")
    assert role["ManagedPolicyArns"] == ["arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"]


def test_a_new_model_is_canaried_by_default(template):
    """The hook runs before any traffic whatever the type; a canary also lets the per-version alarms see 10% of
    real traffic for 5 minutes before the rest moves (AllAtOnce leaves them nothing to act on)."""
    assert template["Parameters"]["DeploymentType"]["Default"] == "Canary10Percent5Minutes"


def test_cost_has_a_ceiling_by_default(deployed):
    """Reserved concurrency caps the instances billed at once (and leaves the account's pool to others); the
    invocations alarm notices a crawler or a loop within the hour; the budget is there when asked for."""
    stack = deployed()
    function = stack.properties("Function")
    assert function["ReservedConcurrentExecutions"] == "10"
    (invocations,) = alarm_series(alarms(stack)["InvocationsAlarm"])
    assert invocations == ("AWS/Lambda", "Invocations", frozenset({("FunctionName", function["FunctionName"])}))
    assert not stack.condition("HasBudget")
    assert "ReservedConcurrentExecutions" not in deployed(ReservedConcurrency="0").properties("Function")


def test_the_optional_budget_notifies_the_alarm_topic(deployed):
    stack = deployed(MonthlyBudgetUsd="50")
    assert stack.condition("HasBudget")
    budget = stack.properties("Budget")
    assert budget["Budget"]["BudgetLimit"] == {"Amount": "50", "Unit": "USD"}
    assert budget["Budget"]["CostFilters"]["TagKeyValue"] == ["aws:cloudformation:stack-name$fashion"]
    topic = stack.ref("AlarmTopic")
    assert all(
        n["Subscribers"] == [{"SubscriptionType": "SNS", "Address": topic}]
        for n in budget["NotificationsWithSubscribers"]
    )
    (statement,) = stack.properties("AlarmTopicPolicy")["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "budgets.amazonaws.com"} and statement["Action"] == "sns:Publish"
    assert stack.resources["Budget"]["Condition"] == stack.resources["AlarmTopicPolicy"]["Condition"] == "HasBudget"
