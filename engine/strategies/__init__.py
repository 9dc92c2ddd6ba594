"""How a rank trains its members: one module per strategy, looked up by name."""
