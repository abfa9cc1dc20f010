"""Entra ID: the app's own tokens for Graph (MSAL) and the callers' tokens (PyJWT)."""
