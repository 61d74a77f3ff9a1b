"""Process plumbing: task ownership, clock, backoff, GC pauses, descriptor limits."""
