"""phiops core: configuration, secrets, backends and the services the CLI and TUI share.

Nothing here imports a heavy library at module level: the TUI must paint fast and the CLI
must answer `--help` at once. torch, transformers, mlflow, azure.ai.ml and promptflow are
imported inside the functions that need them.
"""

__version__ = "0.1.0"
