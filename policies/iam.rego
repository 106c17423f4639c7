# No administrator access granted outside IaC: AWS AdministratorAccess, Azure Owner,
# GCP roles/owner.
package driftwatch.iam

import rego.v1

admin(v) if {
	is_string(v)
	endswith(v, ":policy/AdministratorAccess")
}

admin(v) if v in {"Owner", "roles/owner"}

# A change's value may be one value or a list of them.
values(x) := x if is_array(x)

values(x) := [x] if not is_array(x)

deny_admin_access contains msg if {
	input.kind == "unmanaged"
	some key in ["policy_arn", "role_definition_name", "role"]
	admin(input.live[key])
	msg := sprintf("%s grants %s", [input.resource.id, input.live[key]])
}

deny_admin_access contains msg if {
	input.kind == "changed"
	some change in input.changes
	some v in values(change.actual)
	admin(v)
	msg := sprintf("%s now grants %s (%s)", [input.resource.id, v, change.path])
}
