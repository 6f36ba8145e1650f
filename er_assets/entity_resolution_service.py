"""Facts of AWS Entity Resolution's matching jobs that the production client and the local
emulator must agree on. Checked against botocore's service model
(`botocore/data/entityresolution/2018-05-10/service-2.json`) and the user guide.
"""

# A job is QUEUED, RUNNING, SUCCEEDED or FAILED (the model's JobStatus enum); the first two
# hold the region's one job slot, and there is no cancel operation.
ACTIVE_JOB_STATUSES = ("QUEUED", "RUNNING")
# The quota's name in the user guide ("Quotas for AWS Entity Resolution"): 1 per region, not
# adjustable. ExceedsLimitException names it in its `quotaName` member.
CONCURRENT_JOBS_QUOTA = "Concurrent matching jobs"
