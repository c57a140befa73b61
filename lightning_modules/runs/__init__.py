"""Run bookkeeping without Lightning: run folders, checkpoints by name and the saved run config,
``run_info.json``, ``resume=auto``, the run lock, job folders and job status under Hydra; also the
disk-full message (``disk.py``)."""
