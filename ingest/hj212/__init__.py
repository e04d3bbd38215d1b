"""HJ 212 (2005/2017/2025): the codec, packets into the pipeline, and the TCP gateway."""
