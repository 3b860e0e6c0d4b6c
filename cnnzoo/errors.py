"""Errors caused by the user's input (config, flags, files) or by the run's surroundings (a
diverged loss, a full disk, a busy workdir). Entry points print them on one line and exit
non-zero; anything else is a bug and keeps its traceback."""


class UserError(Exception):
  """Base of the errors a user can fix; the message says how. Exit status 2 (bad input)."""
  exit_code = 2


class ConfigError(UserError, ValueError):
  """A config value that cannot work (unknown name, inconsistent sizes...)."""


class RunStopped(UserError):
  """Training stopped on its own: the loss diverged or a checkpoint could not be written. The
  workdir keeps its last good checkpoint; the message says how to go on. Exit status 3."""
  exit_code = 3


class Terminated(KeyboardInterrupt):
  """SIGTERM (what SLURM, Kubernetes and `kill` send) arrived: handled as Ctrl-C is -- the last
  checkpoint kept, status "interrupted" -- and the command exits 143 (128 + 15)."""
  exit_code = 143
