package driftwatch.iam_test

import rego.v1

import data.driftwatch.iam

test_unmanaged_admin_attachment if {
	f := {"kind": "unmanaged", "resource": {"id": "app/arn:aws:iam::aws:policy/AdministratorAccess"}, "live": {"role": "app", "policy_arn": "arn:aws:iam::aws:policy/AdministratorAccess"}}
	count(iam.deny_admin_access) == 1 with input as f
}

test_changed_role_gains_admin if {
	f := {"kind": "changed", "resource": {"id": "app"}, "changes": [{"path": "managed_policy_arns", "expected": [], "actual": ["arn:aws:iam::aws:policy/AdministratorAccess"]}]}
	count(iam.deny_admin_access) == 1 with input as f
}

test_gcp_owner_binding if {
	f := {"kind": "unmanaged", "resource": {"id": "p/roles/owner/user:x"}, "live": {"role": "roles/owner"}}
	count(iam.deny_admin_access) == 1 with input as f
}

test_read_only_is_fine if {
	f := {"kind": "unmanaged", "resource": {"id": "app/ro"}, "live": {"policy_arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}}
	count(iam.deny_admin_access) == 0 with input as f
}
