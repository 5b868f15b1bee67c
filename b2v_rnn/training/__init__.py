"""The parts of `python -m b2v_rnn.train`, one job per module.

- ``config``: :class:`TrainingConfig`, a run's options, typed and frozen, as checkpoints save them;
- ``options``: the command line, preset defaults, merging a resumed run's settings into that config;
- ``run_folder``: what may be in --out before a run starts, and clearing a failed start;
- ``batches``: the data stream, a function of (seed, step): the HDF5 loader, or clips
  resident in (GPU) memory with the augmentation done there;
- ``step``: one optimisation step of φm, G and D, and the learning-rate schedule;
- ``validation``: the metrics of docs/design.md §7 on the validation split during training;
- ``records``: CSV logs and TensorBoard;
- ``state``: the training state saved in checkpoints (weights, optimisers, RNGs, clock);
- ``signals``: stopping cleanly on SIGINT/SIGTERM;
- ``trainer``: :class:`Trainer`, which sets a run up and drives the loop.
"""
