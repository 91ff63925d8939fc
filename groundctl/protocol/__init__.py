"""Sans-IO protocol machines: feed decoded messages and the time, get messages to send and events."""
