"""What several stages share: model folders, small networks, and (later) attention, quantizers,
diffusion math and EMA."""
