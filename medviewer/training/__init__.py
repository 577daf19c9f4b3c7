"""Training and evaluation of medviewer's demo models (never imported by the app)."""
