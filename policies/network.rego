# No management port open to the whole internet, on any cloud.
#
# The `network.ingress` facet has one shape for AWS security groups, Azure NSGs and GCP
# firewall rules, so this one rule covers all three.
package driftwatch.network

import rego.v1

management_ports := {22: "SSH", 3389: "RDP"}

world_sources := {"0.0.0.0/0", "::/0", "*", "Internet", "any"}

admits(rule, port) if count(rule.ports) == 0

admits(rule, port) if {
	some range in rule.ports
	range.from <= port
	port <= range.to
}

deny_management_port_open_to_world contains msg if {
	input.kind != "missing"
	some rule in input.facets.network.ingress
	rule.action == "allow"
	rule.protocol in {"tcp", "all"}
	some source in rule.sources
	source in world_sources
	some port, service in management_ports
	admits(rule, port)
	msg := sprintf("%s (port %d) is open to %s", [service, port, source])
}
