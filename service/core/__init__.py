"""The use cases: provisioning, rescheduling and cancelling, organizer pools, the monthly
quota and per-caller rate limits."""
