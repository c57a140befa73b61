"""Export a checkpoint as safetensors: ``python scripts/export.py ckpt=best run=<run> output=<folder>``."""

import hydra
from omegaconf import DictConfig

from lightning_modules.commands.errors import one_line_errors
from lightning_modules.commands.export import export
from lightning_modules.commands.resolvers import prepare_hydra

prepare_hydra()  # ${job_dirname:...} in conf/hydra/default.yaml, used by -m


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@one_line_errors
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    main()
