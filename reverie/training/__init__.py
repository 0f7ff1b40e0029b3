"""The training core every model trains through: configs, the Lightning trainer and its callbacks,
checkpoints, export, and SLURM submission."""
