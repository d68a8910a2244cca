"""``python -m visrecur.train``: train a model with one of the paper's recipes (the command line of
``visrecur.training.train``; its options are the fields of ``visrecur.training.config.TrainConfig``).
Several GPUs or machines: ``torchrun --nproc_per_node N -m visrecur.train ...``."""
from __future__ import annotations

import sys

from visrecur.errors import report_errors
from visrecur.training.config import parse_args
from visrecur.training.loop import train


@report_errors(interrupted="interrupted; continue with --resume (the last finished epoch is kept)")
def main(argv=None) -> int:
    train(parse_args(argv))



if __name__ == "__main__":
    sys.exit(main())
