"""Secrets kept out of the servers' logs, and out of what phiops prints from a log.

A client may send a key in the URL (`POST /score?key=…`); the HTTP servers' access logs
(uvicorn's for the scoring server and the gateway, werkzeug's for the served flow) record
the whole request target. The filter here replaces every query string in a logged request
line before the record is written; `redact_log` does the same (and masks bearer tokens
and every key phiops knows) for text read back from a log written before this filter
existed, or by another program.
"""

from __future__ import annotations

import logging
import re

QUERY_MASK = "?…"
# The request target of a logged request line: "POST /score?key=abc HTTP/1.1".
_REQUEST_QUERY = re.compile(r'("[A-Z]+ [^\s?"]*)\?[^\s"]*')
_BARE_QUERY = re.compile(r"(\s/[^\s?\"]*)\?[^\s\"]*(\s+HTTP/)")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def mask_queries(text: str) -> str:
    """Every query string of a request line in `text` replaced by `?…`."""
    text = _REQUEST_QUERY.sub(lambda m: m.group(1) + QUERY_MASK, text)
    return _BARE_QUERY.sub(lambda m: m.group(1) + QUERY_MASK + m.group(2), text)


def _mask_target(target: object) -> object:
    if isinstance(target, str) and "?" in target:
        return target.split("?", 1)[0] + QUERY_MASK
    return target


class QueryStringFilter(logging.Filter):
    """Drops the query string from logged request lines (it may carry a key)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and record.name == "uvicorn.access":
            # uvicorn's access record: (client, method, full_path, http_version, status)
            record.args = (args[0], args[1], _mask_target(args[2]), args[3], args[4])
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        masked = mask_queries(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def redact_access_logs(*loggers: str) -> None:
    """Attach the filter to these loggers (the records they log themselves)."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryStringFilter) for f in logger.filters):
            logger.addFilter(QueryStringFilter())


def redact_log(text: str) -> str:
    """Log text made safe to print: query strings, bearer tokens and known keys masked."""
    from core.secrets import redact

    text = _BEARER.sub(lambda m: m.group(1) + "…", mask_queries(text))
    return redact(text)
