"""The support bundle: one operation, ``bundle.create`` (scope ``diag.read``), that packs a
consistent snapshot of the host's diagnostics, the customer-allowlisted configuration files
and log tails into one redacted, compressed archive with a manifest, and streams it.

Modules: ``policy`` is the customer's optional ``[bundle]`` section of agent.toml;
``collect`` reads and redacts what goes in; ``archive`` writes the tar.gz with its
manifest first; ``operation`` is the operation as the catalogue runs it. Importing this
package imports nothing heavy: ``agent.config`` imports ``policy`` alone.
"""
