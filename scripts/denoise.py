"""Denoise images of any size: ``python scripts/denoise.py input=<file|folder|glob> output=<folder>``."""

import hydra
from omegaconf import DictConfig

from lightning_modules.denoising import denoise


@hydra.main(version_base="1.3", config_path="../conf", config_name="denoise")
def main(cfg: DictConfig) -> None:
    denoise(cfg)


if __name__ == "__main__":
    main()
