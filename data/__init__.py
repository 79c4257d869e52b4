"""Data layer of fintag: the label taxonomy, text normalisation, sentence splitting and dataset building."""
