"""Video tokenizers: continuous and discrete frame and clip autoencoders, and their metrics."""
