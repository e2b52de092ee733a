"""The smallest application that migrates its own models and the library's tables."""
