"""An ensemble in one command (seed 000's five MiniVGGNets): `config.ensemble.members = N` trains
N copies of the config with seeds seed, seed+1, ... into WORKDIR/member_K, then evaluates the mean
of their class probabilities on the test split into WORKDIR/ensemble_eval_test.

Each member is an ordinary run directory: rerunning the command resumes the member that was
interrupted (bitwise, as any run), and finished members are only re-tested.
"""

import os

from cnnzoo.errors import UserError
from cnnzoo.evaluation import evaluate as evaluate_lib
from cnnzoo.training import loop
from cnnzoo.training import validate
from cnnzoo import paths


def member_dirs(workdir: str, members: int) -> list[str]:
  return [os.path.join(workdir, f"member_{k}") for k in range(members)]


def train_ensemble(config, workdir: str, *, resume_epoch=None, init_from=None, echo=print,
                   command: dict | None = None) -> dict:
  """Trains (or resumes) every member, then evaluates the ensemble; returns its evaluation."""
  validate.check(config)
  n = config.ensemble.members
  if resume_epoch is not None or init_from is not None:
    raise UserError("--resume_epoch / --init_from apply to one run; for an ensemble pass them to a member: "
                    f"--workdir={os.path.join(workdir, 'member_K')} --config.ensemble.members=0")
  paths.check_writable(workdir, "--workdir")
  dirs = member_dirs(workdir, n)
  for k, member_dir in enumerate(dirs):
    member = config.copy_and_resolve_references()
    member.seed = config.seed + k
    member.ensemble.members = 0
    echo(f"ensemble member {k + 1} of {n} (seed {member.seed}): {member_dir}")
    loop.train_and_evaluate(member, member_dir, command=command)
  return evaluate_lib.evaluate_runs(dirs, "test", "latest", out=os.path.join(workdir, "ensemble_eval_test"), echo=echo)
