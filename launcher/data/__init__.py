"""Data: reading split files, tokenizer loading, preparation into the content-keyed cache (shard by shard:
shards.py lists them, parts.py writes each one's columns and assembles the split), the prepared store
(memory-mapped columns), fingerprints, the cache index and the global sample order.

Used by the launcher (`llaunch prepare`, the cache look-up before a launch) and by the workers alike;
nothing here imports torch. Preparation hands rows to the objective's `encode_part` (launcher/train/objectives).
"""
