"""The `skiff` command line and the local cluster: the only code that imports graph, broker and
proxy together."""
