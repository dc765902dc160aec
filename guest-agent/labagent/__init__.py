"""lab-agent: a small container engine for lab guests, speaking the Docker Engine API."""

from .contract import API_VERSION as API_VERSION

ENGINE_VERSION = "0.1.0"
MIN_API_VERSION = "1.24"
