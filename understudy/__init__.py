"""understudy's launcher: the command line, process lifecycle and the `serve` supervisor."""
