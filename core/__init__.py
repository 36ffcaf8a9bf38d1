"""optarena: an AlgoPerf-style benchmark and leaderboard for neural-network training algorithms.

The repository's top-level folders are installed as this package's subpackages:
`optarena.workloads`, `optarena.submissions`, `optarena.harness`, `optarena.scoring` and
`optarena.leaderboard`. Importing `optarena` itself loads nothing else.
"""
