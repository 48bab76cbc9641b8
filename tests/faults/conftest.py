"""The fault suite's scenario files are inputs for the CLI, not test modules."""

collect_ignore_glob = ["scenarios/*"]
