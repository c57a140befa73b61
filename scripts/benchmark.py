"""Benchmark speed against the hardware and the alternatives: ``python scripts/benchmark.py [quick=true]``."""

import hydra
from omegaconf import DictConfig

from lightning_modules.benchmark.runner import run_benchmark
from lightning_modules.runs.errors import one_line_errors
from lightning_modules.runs.hydra import register_resolvers

register_resolvers()  # ${job_dirname:...} in conf/hydra/default.yaml, used by -m


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
@one_line_errors
def main(cfg: DictConfig) -> None:
    run_benchmark(cfg)


if __name__ == "__main__":
    main()
