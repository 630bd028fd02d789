"""CloudFormation's side of a deploy, for the tests: the values a stack's resources get from the template that AWS's
SAM transform produced, with these parameters (intrinsic functions resolved as CloudFormation resolves them).

Resources that AWS names stand in by fixed values: a function is named by its FunctionName, a published version
is number VERSION, any other physical id or attribute is its logical id (or `logical-id.attribute`).
"""

import re

STACK, REGION, ACCOUNT = "fashion", "eu-west-1", "123456789012"
VERSION = "7"  # the number Lambda gives the version this deploy publishes
PSEUDO = {
    "AWS::StackName": STACK,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
NO_VALUE = object()


class Stack:
    """A transformed template's resources as deployed with `parameters` (the rest at their defaults)."""

    def __init__(self, template: dict, resources: dict, parameters: dict[str, str]):
        declared = template["Parameters"]
        self.parameters = {name: str(p.get("Default", "")) for name, p in declared.items()} | parameters
        self.resources = resources
        self.declared_conditions = template.get("Conditions", {})
        self.conditions: dict[str, bool] = {}  # resolved when first asked: a condition may name another

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.declared_conditions[name]))
        return self.conditions[name]

    def properties(self, logical_id: str) -> dict:
        return self.value(self.resources[logical_id].get("Properties", {}))

    def ref(self, name: str):
        if name in PSEUDO:
            return PSEUDO[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        resource = self.resources[name]
        if resource["Type"] == "AWS::Lambda::Function":
            return self.value(resource["Properties"]["FunctionName"])
        if resource["Type"] == "AWS::Lambda::Version":
            function = self.value(resource["Properties"]["FunctionName"])
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:{VERSION}"
        return name

    def attribute(self, name: str, attribute: str):
        if self.resources[name]["Type"] == "AWS::Lambda::Version" and attribute == "Version":
            return VERSION
        return f"{name}.{attribute}"

    def substitute(self, text: str, variables: dict) -> str:
        def one(match: re.Match) -> str:
            key = match.group(1)
            if key in variables:
                return str(variables[key])
            if "." in key and not key.startswith("AWS::"):
                return str(self.attribute(*key.split(".", 1)))
            return str(self.ref(key))

        return re.sub(r"\$\{([^}!]+)\}", one, text)

    def value(self, node):
        """node with every intrinsic function resolved (properties set to AWS::NoValue removed)."""
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                return self.attribute(*(arg if isinstance(arg, list) else arg.split(".", 1)))
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.substitute(text, self.value(variables))
            if key == "Fn::If":
                name, yes, no = arg
                return self.value(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                left, right = self.value(arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(arg))
            if key == "Fn::Or":
                return any(self.value(arg))
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(p) for p in self.value(parts))
        resolved = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}
