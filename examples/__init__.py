"""Example applications built on satellites; ``satellites demo`` runs the knowledge base."""
