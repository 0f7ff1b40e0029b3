"""reverie: world models from raw video to planners."""

__version__ = "0.1.0"
