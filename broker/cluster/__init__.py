"""What nodes know of each other: heartbeats, the leader locator, inspect."""
