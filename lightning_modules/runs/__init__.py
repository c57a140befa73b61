"""Run bookkeeping without Lightning: run folders and checkpoints by name, ``run_info.json``, config
helpers and resolvers, ``resume=auto``, export of a shippable model, Hydra callbacks."""
