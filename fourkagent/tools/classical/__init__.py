"""Classical (weight-free) restoration tools, one module per category."""
