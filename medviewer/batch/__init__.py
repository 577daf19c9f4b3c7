"""Batch inference: a resumable job table over many series, each model loaded once
(``medviewer batch``). Qt-free."""
