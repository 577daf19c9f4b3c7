"""AI engine: model cards, a model registry and a cancellable inference runner.

Qt-free. torch and MONAI are imported lazily inside the functions that need them, so importing
this package (or ``model_card``/``registry``) does not pull them in.
"""
