"""The HTTP API: strict JSON, schemas, views, problem+json, access logs and the routes."""
