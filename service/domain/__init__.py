"""Pure types of the booking domain: meeting options, a booking request in normal form
with its externalId and fingerprint, callers, and the stored booking record."""
