"""What a benchmark stored, in a form two runs of the same plan can be compared in."""

from __future__ import annotations

from optarena.leaderboard.store import Store


def stored_trials(store: Store) -> dict[tuple, tuple]:
    """Stored benchmark trials by (workload, study, trial, seed), in storing order, each once:
    status, steps to target, hyperparameters and every evaluation."""
    results: dict[tuple, tuple] = {}
    for row in store.benchmark_trials().itertuples():
        key = (row.workload, row.study, row.trial, row.seed)
        assert key not in results, f"{key} stored twice"
        points = store.eval_points(int(row.trial_id))
        assert points, f"{key} stored without its evaluations"
        results[key] = (
            row.status,
            row.steps_to_target,
            store.trial(int(row.trial_id))["hparams"],
            [(p.step, p.train_loss, dict(p.validation), dict(p.test)) for p in points],
        )
    return results
