"""The `fintag` command line: the command table, settings-to-flags parsing and the entry point."""
