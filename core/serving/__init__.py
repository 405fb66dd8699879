"""The local scoring server: the Azure ML online-endpoint contract over a saved model.

`process.start_scoring_server` runs one in its own process; `gateway` is the endpoint in
front of several of them. Heavy libraries (torch, transformers) load only in the server
process, inside functions, so importing this package stays cheap.
"""
