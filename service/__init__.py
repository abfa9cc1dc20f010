"""The meeting-provisioning service: exactly one Teams meeting per booking."""
