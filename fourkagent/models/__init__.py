"""Pretrained neural networks (SPAN super-resolution) run offline through torch."""
