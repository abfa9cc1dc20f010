"""Redis: the client for each topology, the booking repository and the booking lock."""
