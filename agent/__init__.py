"""The obslink agent that runs on a station gateway."""
