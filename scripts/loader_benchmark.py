"""Training-loader throughput: ``python scripts/loader_benchmark.py [data=...] [data.num_workers=N]``."""

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from datamodules.throughput import loader_throughput
from lightning_modules.commands.errors import one_line_errors
from lightning_modules.commands.resolvers import prepare_hydra

prepare_hydra()  # ${job_dirname:...} in conf/hydra/default.yaml, used by -m


@hydra.main(version_base="1.3", config_path="../conf", config_name="loader_benchmark")
@one_line_errors
def main(cfg: DictConfig) -> None:
    result = loader_throughput(instantiate(cfg.data), cfg.batches, cfg.warmup_batches)
    print(
        f"{result['batches']} batches of {cfg.data.batch_size}x{cfg.data.patch_size}² with num_workers="
        f"{cfg.data.num_workers}: {result['patches_per_s']:.1f} patches/s, {result['mpix_per_s']:.2f} Mpix/s"
    )


if __name__ == "__main__":
    main()
