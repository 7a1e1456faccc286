"""Compiled extensions built from ext/*.pyx by setup.py (search tree, sum tree)."""
