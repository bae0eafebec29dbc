"""The `cohort-sync` commands: the command line, the demo and replay."""
