"""The coordinator process: the cluster's global state, shared with workers over ZeroMQ."""
