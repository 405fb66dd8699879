"""Chat: stored sessions and the service that answers through the flow, a served flow or the
endpoint. Import `core.chat.service` / `core.chat.sessions`; nothing heavy loads until asked."""
