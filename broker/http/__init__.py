"""HTTP/SSE plumbing shared by nodes and the proxy (no Redis, no graph)."""
