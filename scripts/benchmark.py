"""Speed of the inference backends and the training step: ``python scripts/benchmark.py`` (docs/performance.md)."""

import hydra
from omegaconf import DictConfig

from benchmarks.run import run_benchmark
from lightning_modules.commands.errors import one_line_errors
from lightning_modules.commands.resolvers import prepare_hydra

prepare_hydra()  # ${job_dirname:...} in conf/hydra/default.yaml, used by -m


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
@one_line_errors
def main(cfg: DictConfig) -> None:
    run_benchmark(cfg)


if __name__ == "__main__":
    main()
