"""The floor: files written atomically, read with checked one-line errors, locked, and row files read as text.

Layer: the bottom one. Imports nothing from the rest of `attempt`.
"""
