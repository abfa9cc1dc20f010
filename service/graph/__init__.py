"""Microsoft Graph: the client with its retries and budget, the circuit breaker, and the
pacing shared by every worker and replica."""
