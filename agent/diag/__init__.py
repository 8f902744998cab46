"""The diagnostics catalogue's implementations: read-only views of the customer host.

One module per subject: ``system`` (host, CPU, memory, disks, clock), ``network``,
``processes``, ``services``, ``connect`` (with ``_http`` and ``_tls``), ``logs`` (tail)
and ``logsearch`` (search, run in the killable child ``_grep``), ``files``, ``database``
(the customer's configured data sources); ``_paths``
opens customer files safely, ``policy`` is the customer's ``[diag]`` allowlists and
``params`` the strict parameter reader.

Each subject module offers ``parse_*`` functions (validate parameters into a frozen
query, raising ``InvalidParams``) and coroutines that run a query and return JSON-ready
dicts whose field names carry their units (``*_bytes``, ``*_percent``, ``*_seconds``,
``*_mhz``, ``*_mbps``, ``*_at`` for Unix times in seconds).

Blocking calls (psutil, the file system) run in worker threads through
``asyncio.to_thread``; waiting happens on the event loop, so that revoking a grant stops
an operation at once. Importing this package imports nothing heavy: ``agent.config``
imports ``policy`` alone.
"""
