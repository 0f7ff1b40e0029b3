"""Synthetic videos for the tokenizer tests: small, seeded, with motion a model can learn."""

import torch


def moving_squares(batch: int, frames: int, size: int) -> torch.Tensor:
    """(B, T, 3, H, W) in [0, 1]: a coloured square per clip sliding over a grey background."""
    generator = torch.Generator().manual_seed(0)
    video = torch.full((batch, frames, 3, size, size), 0.2)
    side = size // 4
    for b in range(batch):
        x, y = torch.randint(0, size - side, (2,), generator=generator).tolist()
        dx, dy = torch.randint(-2, 3, (2,), generator=generator).tolist()
        colour = torch.rand(3, 1, 1, generator=generator)
        for t in range(frames):
            left, top = (x + dx * t) % (size - side), (y + dy * t) % (size - side)
            video[b, t, :, top : top + side, left : left + side] = colour
    return video
