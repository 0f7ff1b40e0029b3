"""The tiny V-JEPA 2-AC that the planning tests plan with: 16 px frames (patches of 8 px, 4 tokens
per frame), a 1-block encoder and a 2-block predictor, for Reacher's 2-d torques and 10-d
observations."""

MODEL_SIZE = 16  # px
ENCODER = dict(frames=2, image_size=MODEL_SIZE, patch_size=8, tubelet_size=2, embed_dim=24, depth=1, num_heads=2, predictor_dim=12, predictor_depth=1, predictor_heads=2)
PREDICTOR = dict(action_dim=2, state_dim=10, state_update="hold", width=32, depth=2, heads=4, max_frames=8)
