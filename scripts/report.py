"""Evaluation report of a checkpoint, or a sweep summary: ``python scripts/report.py ckpt=best [run=...]``."""

import hydra
from omegaconf import DictConfig

from lightning_modules.reporting import report


@hydra.main(version_base="1.3", config_path="../conf", config_name="report")
def main(cfg: DictConfig) -> None:
    report(cfg)


if __name__ == "__main__":
    main()
