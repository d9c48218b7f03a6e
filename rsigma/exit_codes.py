"""The process exit codes every command shares (documented in docs/daemon.md)."""

from __future__ import annotations

from typing import Final

#: The daemon stopped because it could not go on (a matcher pool that gave up, an engine error);
#: `engine eval --strict` read bad input lines; `rule validate` found a broken rule file.
EXIT_FAILURE: Final = 1
#: A usage error or rules that cannot be loaded (as click and RSigma use it).
EXIT_RULE_ERROR: Final = 2
#: A startup setting is unusable (state database, sinks, NATS, API address, a pool that cannot start).
EXIT_CONFIG_ERROR: Final = 3
