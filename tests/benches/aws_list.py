"""The baseline: a plain boto3 script making the same calls as driftwatch's aws provider
(the same list pages, the same per-bucket and per-role calls), one after another.

Usage: aws_list.py ENDPOINT REGION... Prints {"seconds": ..., "calls": ..., "items": ...};
the time excludes interpreter start-up and imports, as driftwatch's excludes process start.
"""
import json
import sys
import time

import boto3
from botocore.exceptions import ClientError


def main():
    endpoint, regions = sys.argv[1], sys.argv[2:]
    kw = dict(endpoint_url=endpoint, aws_access_key_id="testing",
              aws_secret_access_key="testing")
    session = boto3.session.Session()
    started = time.perf_counter()
    calls = items = 0

    def pages(client, op, key, **args):
        nonlocal calls, items
        for page in client.get_paginator(op).paginate(**args):
            calls += 1
            found = page.get(key, [])
            items += len(found)
            yield from found

    sts = session.client("sts", region_name=regions[0], **kw)
    sts.get_caller_identity()
    calls += 1
    for region in regions:
        ec2 = session.client("ec2", region_name=region, **kw)
        for op, key in [("describe_security_groups", "SecurityGroups"),
                        ("describe_vpcs", "Vpcs"), ("describe_subnets", "Subnets"),
                        ("describe_instances", "Reservations")]:
            for _ in pages(ec2, op, key, PaginationConfig={"PageSize": 1000}):
                pass
    s3 = session.client("s3", region_name=regions[0], **kw)
    for b in pages(s3, "list_buckets", "Buckets"):
        for op in ["get_bucket_tagging", "get_bucket_versioning", "get_bucket_encryption",
                   "get_public_access_block", "get_bucket_acl", "get_bucket_policy"]:
            calls += 1
            try:
                getattr(s3, op)(Bucket=b["Name"])
            except ClientError:
                pass
    iam = session.client("iam", region_name=regions[0], **kw)
    for role in pages(iam, "list_roles", "Roles", PaginationConfig={"PageSize": 1000}):
        for _ in pages(iam, "list_role_tags", "Tags", RoleName=role["RoleName"]):
            pass
        for _ in pages(iam, "list_attached_role_policies", "AttachedPolicies",
                       RoleName=role["RoleName"]):
            pass
    for _ in pages(iam, "list_policies", "Policies", Scope="Local"):
        pass
    print(json.dumps({"seconds": time.perf_counter() - started, "calls": calls,
                      "items": items}))


main()
