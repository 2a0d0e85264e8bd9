"""The review pages served by the service itself (no separate front end)."""
