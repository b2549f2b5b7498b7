"""The runner agent: ``edgebench_agent.py`` is copied to devices and run there as a script.

Nothing here imports it; the host talks to it through ``runners.agent_client``.
The wire protocol is described in PROTOCOL.md next to this file.
"""

from pathlib import Path

AGENT_FILE = Path(__file__).resolve().parent / "edgebench_agent.py"
