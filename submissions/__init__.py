"""Submissions: training algorithms as optax factories, built in or loaded as plugins.

The contract a plugin needs is importable from here (``from optarena.submissions import
Submission``); importing it loads neither JAX nor optax.
"""

from optarena.submissions.api import Hparams, SearchSpace, Submission, WorkloadInfo, with_defaults

__all__ = ["Hparams", "SearchSpace", "Submission", "WorkloadInfo", "with_defaults"]
