"""The one exception type that means "the user gave us something we cannot use".

The CLI turns it into a single line on stderr and exit code 2, never a traceback.
"""


class UserError(Exception):
    """Bad input from a person: the message names the problem and the fix."""

    exit_code = 2
