"""Fit the noise model to your pairs: ``python scripts/fit_noise.py data_root=<folder> output=<yaml>``."""

import hydra
from omegaconf import DictConfig

from lightning_modules.commands.errors import one_line_errors
from lightning_modules.commands.fit_noise import fit_noise
from lightning_modules.commands.resolvers import prepare_hydra

prepare_hydra()  # ${job_dirname:...} in conf/hydra/default.yaml


@hydra.main(version_base="1.3", config_path="../conf", config_name="fit_noise")
@one_line_errors
def main(cfg: DictConfig) -> None:
    fit_noise(cfg)


if __name__ == "__main__":
    main()
