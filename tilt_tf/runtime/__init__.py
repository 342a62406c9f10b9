"""What runs a training job: strategy, run directory, the n-step loop and its
actions (checkpointing, divergence rollback, the §5.3 quality monitor),
checkpoint recovery, and `restore` of a finished run (build.py)."""
