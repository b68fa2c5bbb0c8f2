#!/usr/bin/env python3
"""Create template.yaml's DynamoDB tables, SQS queues and Secrets Manager secrets in the
local stack and print the functions' environment variables, resolved against it, as one
JSON object.

template.yaml stays the single source of truth: there is no list of tables, queues or
secrets here.
- Tables: every AWS::DynamoDB::Table resource is created with CreateTable on the local
  DynamoDB engine (DynamoDB Local, or moto), with the template's keys, attribute
  definitions, billing mode, GSIs/LSIs with their projections and streams, then TTL
  with UpdateTimeToLive. What a local engine lacks or does not need (point-in-time
  recovery, SSE/KMS, deletion protection, tags) is skipped and named in the log.
  The table is named <stack>-<logical id>.
- Queues: every AWS::SQS::Queue resource is copied into a plain CloudFormation
  template and created with moto's CloudFormation (redrive policies and DLQ
  !GetAtt ... Arn applied as CloudFormation would); moto reports queue URLs that
  point at AWS, so the emulator is asked for its own.
- Secrets: every AWS::SecretsManager::Secret resource is created with CreateSecret on
  moto (AWS_ENDPOINT_URL), named as the template names it (its `Name`, with
  ${AWS::StackName} = the local stack name: leads-local/phone-hash, ...): a
  `GenerateSecretString` becomes a fresh random value of that length and alphabet, a
  `SecretString` is taken as it is ("{}" for the ones operators fill in; stack.sh puts
  demo values there with local_secrets.py). A secret that exists already is kept as it
  is, whatever its value. KmsKeyId and tags are skipped (named in the log). `!Ref` of a
  secret is its ARN, as in CloudFormation, so the env gets the *_SECRET_ID ids and never
  a secret's value.

Run with the venv's python, with AWS_ENDPOINT_URL (moto), AWS_ENDPOINT_URL_DYNAMODB
(the DynamoDB engine), AWS_REGION and dummy credentials set (infra/local/stack.sh
does this). Idempotent: existing tables, secrets and the queue stack are reused.
Env: LOCAL_STACK_NAME (default leads-local), LEADS_TEMPLATE (default <repo>/template.yaml).
"""
import json
import os
import re
import secrets
import string
import sys
from pathlib import Path

import boto3
import yaml
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = Path(os.environ.get("LEADS_TEMPLATE", REPO / "template.yaml"))
STACK = os.environ.get("LOCAL_STACK_NAME", "leads-local")
ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
DYNAMODB_ENDPOINT = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", ENDPOINT)
REGION = os.environ.get("AWS_REGION", "us-east-1")
TABLE, QUEUE, SECRET = "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SecretsManager::Secret"
FUNCTIONS = ("AWS::Serverless::Function", "AWS::Lambda::Function")
PSEUDO = {  # what moto uses; only needed if an env value refers to them
    "AWS::Region": REGION, "AWS::AccountId": "123456789012", "AWS::StackName": STACK,
    "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
}


def log(msg):
    print(f"create_resources: {msg}", file=sys.stderr)


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short tags into their long JSON form:
    !Ref X -> {"Ref": "X"}, !GetAtt A.B -> {"Fn::GetAtt": ["A", "B"]}, !Sub s -> {"Fn::Sub": s}."""


def _short_tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Fn::" + suffix: value}


CfnLoader.add_multi_constructor("!", _short_tag)


def queue_template(tpl, tables):
    """Only the queues, plus the sections their properties may refer to, and the
    template's Outputs that name a queue or a table (a table's as its local name, the
    tables being made outside the stack), so `leadctl stack-env` reads this stack as
    it reads a deployed one."""
    out = {"AWSTemplateFormatVersion": "2010-09-09"}
    for section in ("Parameters", "Mappings", "Conditions"):
        if section in tpl:
            out[section] = tpl[section]
    out["Resources"] = {k: r for k, r in tpl["Resources"].items() if r["Type"] == QUEUE}
    outputs = {}
    for name, output in tpl.get("Outputs", {}).items():
        ref = output.get("Value", {}).get("Ref") if isinstance(output.get("Value"), dict) else None
        if ref in out["Resources"]:
            outputs[name] = {"Value": {"Ref": ref}}
        elif ref in tables:
            outputs[name] = {"Value": tables[ref]}
    if outputs:
        out["Outputs"] = outputs
    return out


# CreateTable takes these template properties as they are.
TABLE_PROPERTIES = ("AttributeDefinitions", "KeySchema", "BillingMode", "ProvisionedThroughput",
                    "GlobalSecondaryIndexes", "LocalSecondaryIndexes", "StreamSpecification")
# Applied after creation (TTL), or not needed by a local engine.
TABLE_PROPERTIES_LATER = ("TimeToLiveSpecification",)
TABLE_PROPERTIES_SKIPPED = ("PointInTimeRecoverySpecification", "SSESpecification",
                            "DeletionProtectionEnabled", "Tags", "TableClass",
                            "ContributorInsightsSpecification")


def create_table_request(logical, props):
    """The CreateTable request for one template table."""
    unknown = set(props) - set(TABLE_PROPERTIES + TABLE_PROPERTIES_LATER + TABLE_PROPERTIES_SKIPPED)
    if unknown:
        # A new property must be mapped here consciously, not dropped silently.
        raise ValueError(f"{logical}: template properties not handled locally: {sorted(unknown)}")
    request = {"TableName": f"{STACK}-{logical}"}
    for name in TABLE_PROPERTIES:
        if name in props:
            request[name] = props[name]
    skipped = sorted(set(props) & set(TABLE_PROPERTIES_SKIPPED))
    if skipped:
        log(f"{logical}: skipped locally: {', '.join(skipped)}")
    return request


def ensure_table(ddb, logical, props):
    request = create_table_request(logical, props)
    try:
        ddb.create_table(**request)
        log(f"created table {request['TableName']}")
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceInUseException":
            raise
    ddb.get_waiter("table_exists").wait(TableName=request["TableName"],
                                        WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    spec = props.get("TimeToLiveSpecification")
    if spec:
        enable_ttl(ddb, request["TableName"], spec)
    return request["TableName"]


def ensure_stack(cf, body):
    try:
        cf.create_stack(StackName=STACK, TemplateBody=body)
        log(f"creating stack {STACK}")
    except ClientError as e:
        if e.response["Error"]["Code"] != "AlreadyExistsException":
            raise
        log(f"stack {STACK} exists; reusing it")
        current = cf.get_template(StackName=STACK)["TemplateBody"]  # boto3 parses JSON bodies
        if (json.loads(current) if isinstance(current, str) else current) != json.loads(body):
            log("WARNING: it was created from an older template.yaml; "
                "run `infra/local/stack.sh down && infra/local/stack.sh up` for a fresh one")
    cf.get_waiter("stack_create_complete").wait(
        StackName=STACK, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def enable_ttl(ddb, table, spec):
    """CreateTable has no TTL parameter; apply it through the API."""
    if str(spec.get("Enabled")).lower() != "true":
        return
    current = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if current.get("TimeToLiveStatus") == "ENABLED":
        return  # AWS rejects enabling twice; keep re-runs quiet
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={
        "AttributeName": spec["AttributeName"], "Enabled": True})


# CreateSecret takes these; the value comes from SecretString or GenerateSecretString.
SECRET_PROPERTIES = ("Name", "Description", "SecretString", "GenerateSecretString")
SECRET_PROPERTIES_SKIPPED = ("KmsKeyId", "Tags", "ReplicaRegions")


def generate_secret_string(spec):
    """A value as Secrets Manager's GenerateSecretString would make it (its defaults:
    32 characters of letters, digits and punctuation, at least one of each included
    type), from Python's CSPRNG; with SecretStringTemplate and GenerateStringKey, that
    JSON with the generated value under the key."""
    known = {"PasswordLength", "ExcludeCharacters", "ExcludeLowercase", "ExcludeNumbers",
             "ExcludePunctuation", "ExcludeUppercase", "IncludeSpace",
             "RequireEachIncludedType", "SecretStringTemplate", "GenerateStringKey"}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"GenerateSecretString: not handled locally: {sorted(unknown)}")
    flag = lambda k, default=False: str(spec.get(k, default)).lower() == "true"
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    types = [chars for chars, off in ((string.ascii_lowercase, "ExcludeLowercase"),
                                      (string.ascii_uppercase, "ExcludeUppercase"),
                                      (string.digits, "ExcludeNumbers"),
                                      (string.punctuation, "ExcludePunctuation"))
             if not flag(off)]
    if flag("IncludeSpace"):
        types.append(" ")
    types = ["".join(c for c in chars if c not in excluded) for chars in types]
    types = [t for t in types if t]
    alphabet = "".join(types)
    length = int(spec.get("PasswordLength", 32))
    if not alphabet or length < 1:
        raise ValueError("GenerateSecretString: nothing to generate from")
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if not flag("RequireEachIncludedType", True) or length < len(types) or all(
                any(c in t for c in value) for t in types):
            break
    if "GenerateStringKey" in spec:
        doc = json.loads(spec.get("SecretStringTemplate", "{}"))
        doc[spec["GenerateStringKey"]] = value
        return json.dumps(doc)
    return value


def ensure_secret(sm, logical, props, resolver):
    """Creates the secret unless one of that name exists (kept as it is); returns its ARN."""
    unknown = set(props) - set(SECRET_PROPERTIES + SECRET_PROPERTIES_SKIPPED)
    if unknown:
        raise ValueError(f"{logical}: template properties not handled locally: {sorted(unknown)}")
    skipped = sorted(set(props) & set(SECRET_PROPERTIES_SKIPPED))
    if skipped:
        log(f"{logical}: skipped locally: {', '.join(skipped)}")
    name = resolver.value(props["Name"]) if "Name" in props else f"{STACK}-{logical}"
    try:
        arn = sm.describe_secret(SecretId=name)["ARN"]
        log(f"secret {name} exists; kept as it is")
        return arn
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    if "SecretString" in props:
        value = resolver.value(props["SecretString"])
    elif "GenerateSecretString" in props:
        value = generate_secret_string(props["GenerateSecretString"])
    else:
        raise ValueError(f"{logical}: neither SecretString nor GenerateSecretString")
    request = {"Name": name, "SecretString": value}
    if "Description" in props:
        request["Description"] = resolver.value(props["Description"])
    try:
        arn = sm.create_secret(**request)["ARN"]
        log(f"created secret {name}")
    except ClientError as e:  # a parallel run made it first
        if e.response["Error"]["Code"] != "ResourceExistsException":
            raise
        arn = sm.describe_secret(SecretId=name)["ARN"]
    return arn


class Resolver:
    """Resolves an environment value the way CloudFormation would, but against the emulator."""

    def __init__(self, tpl, physical, sqs):
        self.params = tpl.get("Parameters", {})
        self.types = {k: r["Type"] for k, r in tpl["Resources"].items()}
        self.physical, self.sqs = physical, sqs

    def ref(self, name):
        if self.types.get(name) in (TABLE, QUEUE, SECRET) and name not in self.physical:
            raise ValueError(f"{name} is not in the running stack (made from an older template?)")
        if self.types.get(name) == QUEUE:
            # Physical id is the AWS-style URL; ask the emulator for its own URL by name.
            queue_name = self.physical[name].rsplit("/", 1)[-1]
            return self.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        if self.types.get(name) == TABLE:
            return self.physical[name]  # the table name
        if self.types.get(name) == SECRET:
            return self.physical[name]  # the secret's ARN, as CloudFormation's Ref
        if name in self.params and "Default" in self.params[name]:
            return scalar(self.params[name]["Default"])
        if name in PSEUDO:
            return PSEUDO[name]
        raise ValueError(f"!Ref {name} is not a table, queue, secret or parameter with a Default")

    def value(self, v):
        if not isinstance(v, dict):
            return scalar(v)
        if list(v) == ["Ref"]:
            return self.ref(v["Ref"])
        if list(v) == ["Fn::Sub"]:
            text, extra = (v["Fn::Sub"], {}) if isinstance(v["Fn::Sub"], str) else v["Fn::Sub"]
            extra = {k: self.value(x) for k, x in extra.items()}
            # ${Name} -> variable or Ref; ${!Literal} -> ${Literal}
            return re.sub(r"\$\{(!?)([^}]+)\}", lambda m: "${" + m[2] + "}" if m[1]
                          else extra[m[2]] if m[2] in extra else self.ref(m[2]), text)
        raise ValueError(f"{json.dumps(v)} can't be resolved locally (only !Ref, !Sub, plain values)")


def scalar(v):
    """CloudFormation passes env values as strings: true -> "true", 90 -> "90"."""
    return str(v).lower() if isinstance(v, bool) else str(v)


def environment(tpl):
    """Globals.Function.Environment.Variables, then each function's own (which wins)."""
    glob = tpl.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    merged, owner = dict(glob), {}
    for name, res in tpl["Resources"].items():
        if res["Type"] not in FUNCTIONS:
            continue
        for k, v in res.get("Properties", {}).get("Environment", {}).get("Variables", {}).items():
            if k in owner and merged[k] != v:  # one env file can hold only one value
                log(f"WARNING: {k} differs between {owner[k]} and {name}; using {name}'s")
            merged[k], owner[k] = v, name
    return merged


def main():
    tpl = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    kw = dict(endpoint_url=ENDPOINT, region_name=REGION)
    cf, sqs, sm = (boto3.client(s, **kw) for s in ("cloudformation", "sqs", "secretsmanager"))
    ddb = boto3.client("dynamodb", endpoint_url=DYNAMODB_ENDPOINT, region_name=REGION)

    physical = {name: ensure_table(ddb, name, res.get("Properties", {}))
                for name, res in tpl["Resources"].items() if res["Type"] == TABLE}
    log(f"{len(physical)} tables ready in {DYNAMODB_ENDPOINT}")
    ensure_stack(cf, json.dumps(queue_template(tpl, physical), default=str))
    queues = {r["LogicalResourceId"]: r["PhysicalResourceId"]
              for r in cf.describe_stack_resources(StackName=STACK)["StackResources"]}
    physical.update(queues)
    log(f"{len(queues)} queues ready in {ENDPOINT}")
    # Secret names may use parameters and pseudo parameters, not other resources.
    names = Resolver(tpl, {}, sqs)
    secret_arns = {name: ensure_secret(sm, name, res.get("Properties", {}), names)
                   for name, res in tpl["Resources"].items() if res["Type"] == SECRET}
    physical.update(secret_arns)
    log(f"{len(secret_arns)} secrets ready in {ENDPOINT}")

    resolver, env = Resolver(tpl, physical, sqs), {}
    for key, raw in environment(tpl).items():
        try:
            env[key] = resolver.value(raw)
            if "{{resolve:" in env[key]:
                # e.g. {{resolve:secretsmanager:...}}: CloudFormation fills it in at deploy
                # time (the template must not: secrets are read at run time by id);
                # passing the literal on would only give a confusing parse error.
                del env[key]
                raise ValueError("dynamic reference {{resolve:...}}; not resolved locally")
        except ValueError as e:
            # One exotic variable must not take the whole local stack down: say so, skip it.
            log(f"WARNING: {key} skipped: {e}")
    json.dump(env, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
