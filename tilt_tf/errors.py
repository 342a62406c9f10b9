"""User-facing errors: one line that says what is wrong and what to do."""

__all__ = ['UserError']


class UserError(Exception):
  """A problem with the user's input or environment, not a bug.

  The binaries catch it, print `error: <message>` on one line and exit 2,
  without a traceback. The message names what is wrong and how to fix it.
  """
