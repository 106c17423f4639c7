"""Seeds a moto server with an AWS estate of about N resources over three regions.

Usage: aws_seed.py ENDPOINT N. Prints the counts it created as JSON.
"""
import json
import sys

import boto3

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]


def main():
    endpoint, n = sys.argv[1], int(sys.argv[2])
    kw = dict(endpoint_url=endpoint, aws_access_key_id="testing",
              aws_secret_access_key="testing")
    buckets = roles = max(1, n // 50)
    per_region = (n - buckets - roles) // len(REGIONS)
    vpcs = max(1, per_region // 16)
    subnets = per_region * 3 // 16
    instances = per_region * 2 // 16
    sgs = per_region - vpcs - subnets - instances
    counts = {"regions": {}, "buckets": buckets, "roles": roles}
    for region in REGIONS:
        ec2 = boto3.client("ec2", region_name=region, **kw)
        vpc_ids = []
        for v in range(vpcs):
            vpc = ec2.create_vpc(CidrBlock=f"10.{v % 250}.0.0/16")["Vpc"]["VpcId"]
            vpc_ids.append(vpc)
        subnet_ids = []
        for s in range(subnets):
            vpc = vpc_ids[s % vpcs]
            net = ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.{(s % vpcs) % 250}.{s // vpcs}.0/24")
            subnet_ids.append(net["Subnet"]["SubnetId"])
        for g in range(sgs):
            ec2.create_security_group(GroupName=f"sg-{g}", Description="bench",
                                      VpcId=vpc_ids[g % vpcs])
        left = instances
        while left > 0:
            batch = min(left, 50)
            ec2.run_instances(ImageId="ami-12c6146b", InstanceType="t3.micro",
                              MinCount=batch, MaxCount=batch, SubnetId=subnet_ids[0])
            left -= batch
        counts["regions"][region] = {"vpcs": vpcs, "subnets": subnets,
                                     "security_groups": sgs, "instances": instances}
    s3 = boto3.client("s3", region_name="us-east-1", **kw)
    for b in range(buckets):
        s3.create_bucket(Bucket=f"bench-{b}")
    iam = boto3.client("iam", region_name="us-east-1", **kw)
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})
    for r in range(roles):
        iam.create_role(RoleName=f"bench-{r}", AssumeRolePolicyDocument=trust)
    print(json.dumps(counts))


main()
