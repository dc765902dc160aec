"""Guest images: recipes, the offline builder, and the cache of built images."""
