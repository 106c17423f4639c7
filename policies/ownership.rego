# Every resource carries an owner or managed-by tag, so drift reaches someone.
package driftwatch.ownership

import rego.v1

owner_keys := {"owner", "team", "managed-by", "managed_by"}

warn_no_owner_tag contains msg if {
	input.kind != "missing"
	count({k | some k, _ in input.tags; lower(k) in owner_keys}) == 0
	msg := sprintf("%s %s has no owner or managed-by tag", [input.resource.type, input.resource.id])
}
