"""The kinds of node a graph is made of (map, reduce, lazy, take/slice/merge) and how a change
reaches the readers of one key (tracking, routing, intervals)."""
