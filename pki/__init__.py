"""Deployment PKI: identities, keys, certificates, TLS credentials and join tokens."""
