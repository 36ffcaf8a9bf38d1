"""Loading submissions by built-in name, by ``.py`` path and by installed entry point."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from pathlib import Path

import optax
import pytest

from optarena.submissions import loader
from optarena.submissions.api import Submission, WorkloadInfo

INFO = WorkloadInfo(
    step_hint=100, budget_sec=10.0, batch_size=8, num_train_examples=64, num_devices=1
)


def submission_source(name: str, body: str = "", learning_rate: str = "0.1") -> str:
    return textwrap.dedent(
        f"""
        import optax

        from optarena.submissions.api import Submission
        {body}

        def make_optimizer(hparams, info):
            return optax.sgd({learning_rate})

        SUBMISSION = Submission(name={name!r}, make_optimizer=make_optimizer)
        """
    )


@pytest.fixture
def unique():
    """A fresh module-name prefix; modules imported under it are forgotten afterwards."""
    prefix = f"otest_{uuid.uuid4().hex[:10]}"
    yield prefix
    for name in [m for m in sys.modules if prefix in m]:
        del sys.modules[name]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------------------------
# Built-in names.


@pytest.mark.parametrize("name", loader.builtin_names())
def test_load_builtin(name):
    loaded = loader.load(name)
    assert isinstance(loaded.submission, Submission)
    assert loaded.name == name
    assert loaded.origin == f"builtin:{name}"
    assert len(loaded.source_sha256) == 64
    assert loader.load(name).source_sha256 == loaded.source_sha256
    tx = loaded.submission.make_optimizer(loaded.submission.default_hparams, INFO)
    assert isinstance(tx, optax.GradientTransformation)


def test_builtins_cover_the_baseline_families_and_can_enter_a_ruleset():
    names = loader.builtin_names()
    assert len(names) >= 10
    for name in names:
        submission = loader.load(name).submission
        assert submission.search_space is not None or submission.self_tuning, name
        if submission.self_tuning:
            tx = submission.make_optimizer(None, INFO)
            assert isinstance(tx, optax.GradientTransformation), name
    assert loader.load("prodigy").submission.search_space is None
    assert loader.load("schedule_free_adamw").submission.eval_params is not None


@pytest.mark.parametrize("name", loader.builtin_names())
def test_builtin_names_an_unknown_hyperparameter(name):
    make_optimizer = loader.load(name).submission.make_optimizer
    with pytest.raises(ValueError, match="no_such_hyperparameter"):
        make_optimizer({"no_such_hyperparameter": 1.0}, INFO)


def test_a_path_is_told_from_a_name():
    for reference in ("mine.py", "subs/mine", "subs\\mine", "/abs/mine.py"):
        assert loader.is_path(reference), reference
    for reference in ("nadamw", "acme.plugin", "plugin_name"):
        assert not loader.is_path(reference), reference


def test_a_reference_to_nothing_is_not_found(tmp_path):
    for reference in ("no_such_submission_anywhere", str(tmp_path / "absent.py")):
        with pytest.raises(loader.SubmissionNotFound):
            loader.load(reference)
    broken = write(tmp_path / "broken.py", "import optax\n")
    with pytest.raises(loader.SubmissionError) as error:
        loader.load(str(broken))
    assert not isinstance(error.value, loader.SubmissionNotFound)


def test_unknown_name_lists_known_names():
    with pytest.raises(loader.SubmissionError) as error:
        loader.load("no_such_submission_anywhere")
    message = str(error.value)
    assert "no_such_submission_anywhere" in message
    for name in loader.builtin_names():
        assert name in message


def test_submission_error_is_a_value_error():
    assert issubclass(loader.SubmissionError, ValueError)


# ---------------------------------------------------------------------------------------------
# .py paths.


def test_load_by_path(tmp_path, unique):
    path = write(tmp_path / f"{unique}_sub.py", submission_source("from_file"))
    before = list(sys.path)
    loaded = loader.load(str(path))
    assert loaded.name == "from_file"
    assert loaded.origin == str(path)
    assert len(loaded.source_sha256) == 64
    assert sys.path == before, "loading a file must leave sys.path as it was"
    assert isinstance(loaded.submission.make_optimizer(None, INFO), optax.GradientTransformation)


def test_load_by_relative_path(tmp_path, unique, monkeypatch):
    write(tmp_path / "subs" / f"{unique}_rel.py", submission_source("relative"))
    monkeypatch.chdir(tmp_path)
    assert loader.load(f"subs/{unique}_rel.py").name == "relative"
    monkeypatch.chdir(tmp_path / "subs")
    assert loader.load(f"{unique}_rel.py").name == "relative"


def test_load_file_that_imports_a_sibling(tmp_path, unique):
    helper = f"{unique}_helper"
    write(tmp_path / f"{helper}.py", "LEARNING_RATE = 0.25\n")
    body = f"from {helper} import LEARNING_RATE"
    path = write(
        tmp_path / f"{unique}_main.py",
        submission_source("with_sibling", body=body, learning_rate="LEARNING_RATE"),
    )
    before = list(sys.path)
    loaded = loader.load(str(path))
    assert loaded.name == "with_sibling"
    assert sys.path == before
    assert sys.modules[loaded.submission.make_optimizer.__module__].LEARNING_RATE == 0.25
    assert helper not in sys.modules, "a sibling stays private to the submission that imported it"


def test_two_files_with_same_named_siblings_get_their_own(tmp_path, unique):
    helper = f"{unique}_utils"
    paths = []
    for rate in ("0.5", "0.25"):
        folder = tmp_path / f"rate_{rate}"
        write(folder / f"{helper}.py", f"LEARNING_RATE = {rate}\n")
        body = f"from {helper} import LEARNING_RATE"
        source = submission_source(f"rate_{rate}", body=body, learning_rate="LEARNING_RATE")
        paths.append(write(folder / f"{unique}_sub.py", source))
    rates = []
    for path in paths:
        loaded = loader.load(str(path))
        module = sys.modules[loaded.submission.make_optimizer.__module__]
        rates.append(module.LEARNING_RATE)
    assert rates == [0.5, 0.25]


def test_file_without_submission(tmp_path, unique):
    path = write(tmp_path / f"{unique}_empty.py", "import optax\nX = 1\n")
    with pytest.raises(loader.SubmissionError, match="SUBMISSION"):
        loader.load(str(path))


@pytest.mark.parametrize(
    "value",
    [
        "{'name': 'dict', 'make_optimizer': None}",
        "optax.adam(1e-3)",
        "make_optimizer",
        "None",
    ],
)
def test_file_whose_submission_has_the_wrong_type(tmp_path, unique, value):
    source = "import optax\n\ndef make_optimizer(h, i):\n    return optax.sgd(0.1)\n\n"
    path = write(tmp_path / f"{unique}_wrong.py", source + f"SUBMISSION = {value}\n")
    with pytest.raises(loader.SubmissionError, match="not a submission"):
        loader.load(str(path))


def test_file_that_raises_on_import(tmp_path, unique):
    path = write(tmp_path / f"{unique}_raises.py", "raise RuntimeError('broken plugin')\n")
    before_path, before_modules = list(sys.path), set(sys.modules)
    with pytest.raises(loader.SubmissionError, match="broken plugin"):
        loader.load(str(path))
    assert sys.path == before_path
    assert not {m for m in set(sys.modules) - before_modules if unique in m}


def test_file_with_a_syntax_error(tmp_path, unique):
    path = write(tmp_path / f"{unique}_syntax.py", "def broken(:\n")
    with pytest.raises(loader.SubmissionError):
        loader.load(str(path))


def test_missing_file_and_wrong_suffix(tmp_path):
    with pytest.raises(loader.SubmissionError, match="not found"):
        loader.load(str(tmp_path / "missing.py"))
    text = write(tmp_path / "notes.txt", "SUBMISSION = None\n")
    with pytest.raises(loader.SubmissionError, match=r"\.py"):
        loader.load(str(text))


def test_source_sha256_follows_the_file_content(tmp_path, unique):
    path = write(tmp_path / f"{unique}_hashed.py", submission_source("hashed"))
    first = loader.load(str(path)).source_sha256
    assert loader.load(str(path)).source_sha256 == first, "same content, same hash"
    write(path, submission_source("hashed", learning_rate="0.2"))
    changed = loader.load(str(path))
    assert changed.source_sha256 != first
    write(path, submission_source("hashed"))
    assert loader.load(str(path)).source_sha256 == first
    # The same content elsewhere hashes the same: the hash is of the code, not the path.
    copy = write(tmp_path / "elsewhere" / f"{unique}_hashed.py", submission_source("hashed"))
    assert loader.load(str(copy)).source_sha256 == first


def test_source_sha256_covers_imported_siblings(tmp_path, unique):
    helper = f"{unique}_rates"
    write(tmp_path / f"{helper}.py", "LEARNING_RATE = 0.5\n")
    body = f"from {helper} import LEARNING_RATE"
    source = submission_source("sibling_hash", body=body, learning_rate="LEARNING_RATE")
    path = write(tmp_path / f"{unique}_uses_rates.py", source)
    first = loader.load(str(path)).source_sha256
    write(tmp_path / f"{helper}.py", "LEARNING_RATE = 0.25\n")
    sys.modules.pop(helper, None)
    assert loader.load(str(path)).source_sha256 != first


def test_reloaded_file_runs_the_new_code(tmp_path, unique):
    path = write(tmp_path / f"{unique}_reload.py", submission_source("before"))
    assert loader.load(str(path)).name == "before"
    write(path, submission_source("after"))
    assert loader.load(str(path)).name == "after"


# ---------------------------------------------------------------------------------------------
# Entry points of installed distributions.


def install_fake_distribution(
    site: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """A minimal installed distribution in ``site``: its modules and a ``.dist-info``."""
    info = site / f"{dist}-1.0.dist-info"
    write(info / "METADATA", f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = [f"{name} = {value}" for name, value in entry_points.items()]
    write(info / "entry_points.txt", f"[{loader.ENTRY_POINT_GROUP}]\n" + "\n".join(lines) + "\n")
    for relative, source in modules.items():
        write(site / relative, source)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on ``sys.path`` where fake distributions can be installed."""
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def test_load_by_entry_point(site, unique):
    install_fake_distribution(
        site,
        f"{unique}_dist",
        {
            f"{unique}_obj": f"{unique}_plugin:SUBMISSION",
            f"{unique}_mod": f"{unique}_plugin",
        },
        {f"{unique}_plugin.py": submission_source(f"{unique}_obj")},
    )
    importlib.invalidate_caches()
    found = loader.entry_points()
    assert {f"{unique}_obj", f"{unique}_mod"} <= set(found)
    loaded = loader.load(f"{unique}_obj")
    assert loaded.name == f"{unique}_obj"
    assert loaded.origin.startswith("entry_point:")
    assert f"{unique}_plugin" in loaded.origin
    assert len(loaded.source_sha256) == 64
    # An entry point's name is the submission's name: a second name for it is refused.
    with pytest.raises(loader.SubmissionError, match="the two names must be the same"):
        loader.load(f"{unique}_mod")
    # Installed plugins are listed next to the built-ins when a name is unknown.
    with pytest.raises(loader.SubmissionError, match=f"{unique}_obj"):
        loader.load("no_such_submission_anywhere")


def test_entry_point_name_with_a_dot_is_not_taken_for_a_path(site, unique):
    install_fake_distribution(
        site,
        f"{unique}_dist",
        {f"acme.{unique}": f"{unique}_dotted:SUBMISSION"},
        {f"{unique}_dotted.py": submission_source(f"acme.{unique}")},
    )
    importlib.invalidate_caches()
    assert loader.load(f"acme.{unique}").name == f"acme.{unique}"


def test_load_by_entry_point_of_a_package(site, unique):
    package = f"{unique}_pkg"
    install_fake_distribution(
        site,
        f"{unique}_dist",
        {f"{unique}_packaged": f"{package}:SUBMISSION"},
        {
            f"{package}/__init__.py": submission_source(
                f"{unique}_packaged",
                body="from .rates import LEARNING_RATE",
                learning_rate="LEARNING_RATE",
            ),
            f"{package}/rates.py": "LEARNING_RATE = 0.5\n",
        },
    )
    importlib.invalidate_caches()
    first = loader.load(f"{unique}_packaged")
    assert first.name == f"{unique}_packaged"
    # A package's hash covers every file in it, not only __init__.py.
    write(site / package / "rates.py", "LEARNING_RATE = 0.25\n")
    assert loader.load(f"{unique}_packaged").source_sha256 != first.source_sha256


def test_entry_point_whose_module_fails_to_import(site, unique):
    install_fake_distribution(
        site,
        f"{unique}_dist",
        {f"{unique}_bad": f"{unique}_broken:SUBMISSION"},
        {f"{unique}_broken.py": "raise ImportError('missing dependency xyz')\n"},
    )
    importlib.invalidate_caches()
    with pytest.raises(loader.SubmissionError, match="missing dependency xyz"):
        loader.load(f"{unique}_bad")


def test_entry_point_that_is_not_a_submission(site, unique):
    install_fake_distribution(
        site,
        f"{unique}_dist",
        {f"{unique}_notsub": f"{unique}_plain:make_optimizer"},
        {f"{unique}_plain.py": submission_source("plain")},
    )
    importlib.invalidate_caches()
    with pytest.raises(loader.SubmissionError, match="not a submission"):
        loader.load(f"{unique}_notsub")


@pytest.mark.parametrize("builtin", loader.builtin_names())
def test_entry_point_named_like_a_builtin_is_an_error(site, unique, builtin):
    install_fake_distribution(
        site,
        f"{unique}_dist",
        {builtin: f"{unique}_impostor:SUBMISSION", f"{unique}_fine": f"{unique}_fine:SUBMISSION"},
        {
            f"{unique}_impostor.py": submission_source(builtin),
            f"{unique}_fine.py": submission_source(f"{unique}_fine"),
        },
    )
    importlib.invalidate_caches()
    # The clash is named with its source, and every other plugin still loads.
    assert builtin not in loader.entry_points()
    assert f"{unique}_impostor" in loader.plugin_clashes()[builtin]
    assert loader.load(f"{unique}_fine").name == f"{unique}_fine"
    # The built-in itself still loads from this repository, never from the plugin.
    assert loader.load(builtin).origin == f"builtin:{builtin}"


def test_two_distributions_with_the_same_entry_point_name(site, unique):
    for index in (1, 2):
        install_fake_distribution(
            site,
            f"{unique}_dist{index}",
            {f"{unique}_same": f"{unique}_mod{index}:SUBMISSION"},
            {f"{unique}_mod{index}.py": submission_source(f"same{index}")},
        )
    importlib.invalidate_caches()
    with pytest.raises(
        loader.SubmissionError,
        match=f"{unique}_dist1.*{unique}_dist2|{unique}_dist2.*{unique}_dist1",
    ):
        loader.load(f"{unique}_same")
