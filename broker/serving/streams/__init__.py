"""What a hub keeps per stream and per instance: the stream table, each instance's state and
resume history, each reader's coalescing mailbox, the timers of heartbeats and token deadlines.
"""
