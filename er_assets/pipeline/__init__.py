"""What each stage does, apart from Dagster's wiring: the data-quality checks and the gate,
the baselines, driving a matching job (`matching_job`), and recording each stage in the job
history (`recording`)."""
