"""The Azure ML backend, through azure-ai-ml and azure-identity (imported lazily)."""
