"""What itslearning's IMS ES service allows a client at once: facts, not settings.

The CLI's defaults and bounds, the executor, `verify` and `adopt` read them here. Pure: imports nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_BATCH_SIZE", "MAX_IN_FLIGHT"]

#: Objects unanswered at once: itslearning asks for fewer than 10 unprocessed objects per integration.
#: The default budget; a larger `--max-in-flight` is allowed only with a warning.
MAX_IN_FLIGHT: Final = 10

#: Objects in one mass request: itslearning strongly discourages more than 50.
MAX_BATCH_SIZE: Final = 50
