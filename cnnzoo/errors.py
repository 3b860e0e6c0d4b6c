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
  """SIGTERM (what SLURM, Kubernetes and `kill` send) or SIGHUP (a closed terminal, a dropped ssh
  session) arrived: handled as Ctrl-C is -- the last checkpoint kept, status "interrupted" -- and
  the command exits 128 + the signal's number (143 for SIGTERM, 129 for SIGHUP)."""
  exit_code = 143

  def __init__(self, signum: int = 15, name: str = "SIGTERM"):
    super().__init__(name)
    self.signum, self.signal_name, self.exit_code = signum, name, 128 + signum
