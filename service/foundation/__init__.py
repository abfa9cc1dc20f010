"""What every layer uses: problem types, Prometheus series, JSON logs, retry timing,
national clouds, the draining flag and the pinned-CA HTTP session."""
