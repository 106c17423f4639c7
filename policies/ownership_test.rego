package driftwatch.ownership_test

import rego.v1

import data.driftwatch.ownership

test_missing_owner_warns if {
	f := {"kind": "unmanaged", "resource": {"type": "aws_s3_bucket", "id": "b"}, "tags": {"env": "prod"}}
	count(ownership.warn_no_owner_tag) == 1 with input as f
}

test_managed_by_counts if {
	f := {"kind": "unmanaged", "resource": {"type": "aws_s3_bucket", "id": "b"}, "tags": {"Managed-By": "terraform"}}
	count(ownership.warn_no_owner_tag) == 0 with input as f
}
