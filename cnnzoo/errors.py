"""Errors caused by the user's input (config, flags, files). Entry points print them on one line
and exit non-zero; anything else is a bug and keeps its traceback."""


class UserError(Exception):
  """Base of the errors a user can fix; the message says how."""


class ConfigError(UserError, ValueError):
  """A config value that cannot work (unknown name, inconsistent sizes...)."""
