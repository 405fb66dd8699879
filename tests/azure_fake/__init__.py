"""A fake Azure at the SDKs' HTTP transport (see tests/azure_standins.py for how tests use it).

Importing the handler modules registers their routes on `server.ROUTER`.
"""

from tests.azure_fake import arm, dataplane, ml  # noqa: F401  (routes register on import)
