"""lab-agent: a small container engine for lab guests, speaking the Docker Engine API."""

ENGINE_VERSION = "0.1.0"
API_VERSION = "1.43"
MIN_API_VERSION = "1.24"
