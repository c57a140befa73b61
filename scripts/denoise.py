"""Denoise images of any size: ``python scripts/denoise.py input=<file|folder|glob> output=<folder>``."""

import hydra
from omegaconf import DictConfig

from lightning_modules.commands.denoise import denoise
from lightning_modules.commands.errors import check_command_line, one_line_errors
from lightning_modules.commands.resolvers import prepare_hydra

prepare_hydra()  # ${job_dirname:...} in conf/hydra/default.yaml, used by -m


@hydra.main(version_base="1.3", config_path="../conf", config_name="denoise")
@one_line_errors
def main(cfg: DictConfig) -> None:
    failed = denoise(cfg)["failed"]
    if failed:
        raise SystemExit(1)  # every readable image is written; failed.txt lists the others


if __name__ == "__main__":
    check_command_line()  # a path with spaces or ( ): one line with the quoting that works
    main()
