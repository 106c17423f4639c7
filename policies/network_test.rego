package driftwatch.network_test

import rego.v1

import data.driftwatch.network

finding(ingress) := {
	"kind": "changed",
	"resource": {"provider": "aws", "type": "aws_security_group", "id": "sg-1"},
	"facets": {"network": {"ingress": ingress}},
}

test_ssh_open_to_world_on_aws if {
	f := finding([{"protocol": "tcp", "ports": [{"from": 22, "to": 22}], "sources": ["0.0.0.0/0"], "action": "allow"}])
	count(network.deny_management_port_open_to_world) == 1 with input as f
}

test_rdp_in_a_range_on_azure if {
	f := finding([{"protocol": "tcp", "ports": [{"from": 3000, "to": 4000}], "sources": ["Internet"], "action": "allow"}])
	count(network.deny_management_port_open_to_world) == 1 with input as f
}

test_all_ports_on_gcp if {
	f := finding([{"protocol": "all", "ports": [], "sources": ["0.0.0.0/0"], "action": "allow"}])
	count(network.deny_management_port_open_to_world) == 2 with input as f
}

test_private_source_is_fine if {
	f := finding([{"protocol": "tcp", "ports": [{"from": 22, "to": 22}], "sources": ["10.0.0.0/8"], "action": "allow"}])
	count(network.deny_management_port_open_to_world) == 0 with input as f
}

test_deny_rule_is_fine if {
	f := finding([{"protocol": "tcp", "ports": [{"from": 22, "to": 22}], "sources": ["*"], "action": "deny"}])
	count(network.deny_management_port_open_to_world) == 0 with input as f
}

test_https_is_fine if {
	f := finding([{"protocol": "tcp", "ports": [{"from": 443, "to": 443}], "sources": ["0.0.0.0/0"], "action": "allow"}])
	count(network.deny_management_port_open_to_world) == 0 with input as f
}
