"""Post-training: action conditioning, the JEPA-AC predictor, inverse dynamics, the learned simulator and planners."""
