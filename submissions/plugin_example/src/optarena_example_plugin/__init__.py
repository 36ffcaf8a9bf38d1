"""An example optarena submission shipped as a package: `submission` defines ``SUBMISSION``,
registered under the ``optarena.submissions`` entry point, and `schedules` is a helper it uses.

Every ``.py`` file of this package counts in the submission's source hash, with the
distribution's name and version: editing any of them, or bumping the version, makes a new
submission.
"""
