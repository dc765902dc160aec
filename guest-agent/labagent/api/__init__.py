"""The Docker Engine API (v1.43 subset) over HTTP/1.1 on a unix socket."""
