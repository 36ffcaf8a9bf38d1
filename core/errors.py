"""The one base class of errors that a user can fix: bad input, not a bug.

Every library error that means "this input cannot be acted on" (an unknown name, a malformed
file, a store that cannot be opened, a submission whose factory fails) derives from
`UserError`. The command line turns any of them into one line on stderr and exit status 2, in
one place (`optarena.harness.cli.main`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Input that optarena cannot act on; its message is one line saying what and why."""
