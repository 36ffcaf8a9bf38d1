"""The harness: runs and times trials by the rules, and the command-line interface."""
