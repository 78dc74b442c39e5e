"""The one exception type for a user's mistake: printed as one line, exit code 2, no traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad recipe, missing file, ...). The message is one line."""

    exit_code = 2


class RunError(UserError):
    """A run that cannot go on for a reason outside the recipe (disk full, ...): one line, exit code 1."""

    exit_code = 1
