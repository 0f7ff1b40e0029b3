"""Video tokenizers: continuous and discrete frame and clip autoencoders, and their metrics.

`decode(model_or_folder, latents_or_tokens)` turns a latent shard's latents or codes back into
frames (`reverie.tokenizers.latents`, which also describes the latent shard format)."""

from reverie.tokenizers.latents import decode

__all__ = ["decode"]
