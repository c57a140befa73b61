"""Train a denoiser: ``python scripts/train.py [overrides]`` (see ``conf/train.yaml``)."""

import hydra
from omegaconf import DictConfig

from lightning_modules.commands.errors import check_command_line, one_line_errors
from lightning_modules.commands.resolvers import prepare_hydra
from lightning_modules.commands.train import train

prepare_hydra()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
@one_line_errors
def main(cfg: DictConfig) -> float | None:
    return train(cfg).get(cfg.get("optimized_metric", "val/psnr_best"))


if __name__ == "__main__":
    check_command_line()  # a path with spaces or ( ): one line with the quoting that works
    main()
