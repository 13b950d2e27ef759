"""Run reports: the JSON record next to every output, and the one-paragraph summary."""
