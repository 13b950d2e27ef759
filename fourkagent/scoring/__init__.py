"""Quality scoring: NR-IQA measures and the Q-MoE candidate scorer."""
