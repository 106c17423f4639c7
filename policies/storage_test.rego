package driftwatch.storage_test

import rego.v1

import data.driftwatch.storage

test_public_bucket_denied if {
	f := {"kind": "unmanaged", "resource": {"type": "aws_s3_bucket", "id": "b"}, "facets": {"storage": {"public": true, "encrypted": true}}}
	count(storage.deny_public_storage) == 1 with input as f
}

test_private_bucket_allowed if {
	f := {"kind": "unmanaged", "resource": {"type": "aws_s3_bucket", "id": "b"}, "facets": {"storage": {"public": false, "encrypted": true}}}
	count(storage.deny_public_storage) == 0 with input as f
	count(storage.warn_unencrypted_storage) == 0 with input as f
}

test_unencrypted_warns if {
	f := {"kind": "changed", "resource": {"type": "aws_s3_bucket", "id": "b"}, "facets": {"storage": {"public": false, "encrypted": false}}}
	count(storage.warn_unencrypted_storage) == 1 with input as f
}
