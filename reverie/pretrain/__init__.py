"""Pretraining: latent-action models, video dynamics models and V-JEPA."""
