"""Evaluation report of a checkpoint, or a sweep summary: ``python scripts/report.py ckpt=best [run=...]``."""

import hydra
from omegaconf import DictConfig

from datamodules.io.images import stated_bit_depth
from lightning_modules.report.report import report
from lightning_modules.runs.errors import one_line_errors
from lightning_modules.runs.hydra import register_resolvers

register_resolvers()  # ${job_dirname:...} in conf/hydra/default.yaml, used by -m


@hydra.main(version_base="1.3", config_path="../conf", config_name="report")
@one_line_errors
def main(cfg: DictConfig) -> None:
    with stated_bit_depth(cfg.get("bit_depth")):  # bit_depth=12: 12-bit data in 16-bit files
        failed = report(cfg).get("failed")
    if failed:
        raise SystemExit(1)  # the report covers the readable images; failed.txt lists the others


if __name__ == "__main__":
    main()
