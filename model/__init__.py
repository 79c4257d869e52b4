"""Model layer of fintag: the only code that knows how labels map to logits and how checkpoints load."""
