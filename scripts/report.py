"""Evaluation report of a checkpoint, or a sweep summary: ``python scripts/report.py ckpt=best [run=...]``."""

import hydra
from omegaconf import DictConfig

from lightning_modules.commands.errors import check_command_line, one_line_errors
from lightning_modules.commands.report import report
from lightning_modules.commands.resolvers import prepare_hydra

prepare_hydra()  # ${job_dirname:...} in conf/hydra/default.yaml, used by -m


@hydra.main(version_base="1.3", config_path="../conf", config_name="report")
@one_line_errors
def main(cfg: DictConfig) -> None:
    failed = report(cfg).get("failed")
    if failed:
        raise SystemExit(1)  # the report covers the readable images; failed.txt lists the others


if __name__ == "__main__":
    check_command_line()  # a path with spaces or ( ): one line with the quoting that works
    main()
