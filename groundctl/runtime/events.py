"""Re-export: the event types live in the protocol layer (the flight monitor creates them), and the
runtime, the store and the faces use them from here too. Lower layers never import runtime."""

from groundctl.protocol.events import (EVENT_KINDS, PHASES, DeliveryEvent, DeliveryReport, Progress,  # noqa: F401
                                       utcnow)
