"""Image builds from a Containerfile subset, one cached layer per RUN or COPY."""
