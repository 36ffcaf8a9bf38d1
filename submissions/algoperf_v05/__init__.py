"""The AlgoPerf v0.5 field (the first AlgoPerf competition) re-entered as optarena submissions.

One module per published entry, registered in `optarena.submissions.loader` as the group
``algoperf-v05`` with names ``v05_<entry>``: ``optarena submissions --group algoperf-v05``
lists them and every command that takes a submission loads them by name. Each entry follows
its published description and search space as closely as optarena's contract allows (a
submission sees `WorkloadInfo`, never a workload's name, and only builds an optax optimizer);
each module's docstring says where it differs.
"""
