"""Video ingestion: probe, decode, clip, resample, filter, dedup and shard."""
