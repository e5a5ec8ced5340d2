"""HTTP-level fuzz campaign of the device API (issue 14): mutations of valid requests, a raw-socket runner."""
