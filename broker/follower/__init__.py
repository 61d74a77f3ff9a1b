"""The follower role: the mirror, its replication loop, write forwarding."""
