"""Training: the evaluation protocol, the ALS job, the popularity baseline."""
