"""The Redis protocol (RESP2/RESP3) front end."""
