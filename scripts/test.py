"""Evaluate a trained run: ``python scripts/test.py ckpt=best|last|<path> [run=<run folder>]``."""

import hydra
from omegaconf import DictConfig

from lightning_modules.commands.errors import check_command_line, one_line_errors
from lightning_modules.commands.evaluate import evaluate
from lightning_modules.commands.resolvers import prepare_hydra

prepare_hydra()  # ${job_dirname:...} in conf/hydra/default.yaml, used by -m


@hydra.main(version_base="1.3", config_path="../conf", config_name="test")
@one_line_errors
def main(cfg: DictConfig) -> None:
    failed = evaluate(cfg)["failed"]
    if failed:
        raise SystemExit(1)  # the other images are evaluated; failed.txt lists the unreadable ones


if __name__ == "__main__":
    check_command_line()  # a path with spaces or ( ): one line with the quoting that works
    main()
