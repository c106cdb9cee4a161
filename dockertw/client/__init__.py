"""The client: hosts, proxy policy, agents, version negotiation, typed calls."""
