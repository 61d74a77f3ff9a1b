"""How the proxy sees a service's cluster: its nodes (membership), which node takes a request
(routing), where each stream lives (registry), and the control requests it sends nodes."""
