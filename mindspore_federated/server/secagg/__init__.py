"""Secure aggregation and privacy on the server: the cipher rounds of PW_ENCRYPT / STABLE_PW_ENCRYPT, secret
reconstruction and the unmask stage, SignDS update reconstruction (spec §5.1-§5.3)."""
