"""Launch code: SLURM scripts, cluster environments, and the sizes and names they take."""
