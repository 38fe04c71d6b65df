"""Research mode in the orchestrator: an OptimizeStrategy's grid cut into sandbox jobs (chunks.py), run with
progress and the trial ledger (sweep_jobs.py), and read back as rankings, heatmaps, the walk-forward report
and the overfitting statistics (results.py, statistics in services/research/statistics.py)."""
