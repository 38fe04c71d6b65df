"""Research mode: overfitting statistics of parameter sweeps."""
