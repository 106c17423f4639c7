# No public bucket or storage account, on any cloud (the `storage` facet).
package driftwatch.storage

import rego.v1

deny_public_storage contains msg if {
	input.kind != "missing"
	input.facets.storage.public == true
	msg := sprintf("%s %s is readable by anyone", [input.resource.type, input.resource.id])
}

warn_unencrypted_storage contains msg if {
	input.kind != "missing"
	input.facets.storage.encrypted == false
	msg := sprintf("%s %s has no default encryption", [input.resource.type, input.resource.id])
}
