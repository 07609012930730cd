"""The embedded datastack: a deterministic generator and a local server speaking the CAVE wire format."""
